// Request validation: pure checks of headers, query and body against a route's `validate:` rules, each failure a
// Problem (RFC 9457) that the stream answers with an immediate response. Header checks run on request_headers; the
// body is asked for only when a rule needs its bytes.

import type { ValidateRules } from './config.js';
import { nestsDeeperThan } from '../shared/json-depth.js';
import { headerValue, type HeaderList } from './headers.js';

export interface ProblemItem {
  readonly location: 'path' | 'header' | 'query' | 'body';
  /** Header or parameter name, or a JSON pointer into the body. */
  readonly name: string;
  readonly message: string;
}

export interface Problem {
  readonly status: 400 | 413 | 415;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly errors: readonly ProblemItem[];
}

const TYPE = 'urn:portcullis:problem:';

export interface RequestFacts {
  readonly headers: HeaderList;
  readonly query: readonly (readonly [string, string])[];
  /** The request has a body (headers did not end the stream, or content-length > 0). */
  readonly hasBody: boolean;
}

function mediaType(headers: HeaderList): string | undefined {
  const value = headerValue(headers, 'content-type');
  return value?.split(';')[0]?.trim().toLowerCase() || undefined;
}

function contentLength(headers: HeaderList): number | undefined {
  const value = headerValue(headers, 'content-length');
  return value !== undefined && /^\d+$/.test(value.trim()) ? Number(value) : undefined;
}

export function hasRequestBody(headers: HeaderList, endOfStream: boolean): boolean {
  if (endOfStream) return false;
  const length = contentLength(headers);
  return length === undefined || length > 0;
}

/**
 * A path upstreams read in different ways (src/shared/normalize-path.ts refuses it), one of which is a route that
 * validates: which rules would hold cannot be told, so none are skipped (route-choice.ts).
 */
export function ambiguousPath(reason: string): Problem {
  const message = `${reason}: upstreams read this path in different ways`;
  return {
    status: 400, type: `${TYPE}ambiguous-path`, title: 'Request path is ambiguous',
    detail: message, errors: [{ location: 'path', name: '', message }],
  };
}

/** Checks that need only the headers. */
export function validateHeaders(rules: ValidateRules, facts: RequestFacts): Problem | undefined {
  const missing: ProblemItem[] = [
    ...rules.requiredHeaders.filter((h) => headerValue(facts.headers, h) === undefined)
      .map((name): ProblemItem => ({ location: 'header', name, message: 'required header is missing' })),
    ...rules.requiredQueryParams.filter((q) => !facts.query.some(([k]) => k === q))
      .map((name): ProblemItem => ({ location: 'query', name, message: 'required query parameter is missing' })),
  ];
  if (missing.length > 0) {
    return {
      status: 400, type: `${TYPE}missing-parameters`, title: 'Required request parameters are missing',
      detail: `missing: ${missing.map((m) => `${m.location} ${m.name}`).join(', ')}`, errors: missing,
    };
  }
  if (!facts.hasBody) return undefined;
  if (rules.contentTypes.length > 0) {
    const type = mediaType(facts.headers);
    const allowed = type !== undefined && rules.contentTypes.some((t) => t === type || (t.endsWith('/*') && type.startsWith(t.slice(0, -1))));
    if (!allowed) {
      return {
        status: 415, type: `${TYPE}unsupported-media-type`, title: 'Unsupported media type',
        detail: `content-type ${type ?? '(none)'} is not accepted; expected ${rules.contentTypes.join(' or ')}`,
        errors: [{ location: 'header', name: 'content-type', message: `expected ${rules.contentTypes.join(' or ')}` }],
      };
    }
  }
  const length = contentLength(facts.headers);
  if (rules.maxBodyBytes !== undefined && length !== undefined && length > rules.maxBodyBytes) return tooLarge(rules.maxBodyBytes, length);
  return undefined;
}

function tooLarge(max: number, actual: number | undefined): Problem {
  return {
    status: 413, type: `${TYPE}body-too-large`, title: 'Request body too large',
    detail: `the body is ${actual === undefined ? 'more than' : `${actual} bytes,`} the limit is ${max} bytes`,
    errors: [{ location: 'body', name: '', message: `at most ${max} bytes` }],
  };
}

/** Whether the headers answer must ask Envoy for the body: only when a rule needs its bytes. */
export function needsBody(rules: ValidateRules, facts: RequestFacts): boolean {
  if (!facts.hasBody) return false;
  return rules.jsonSchema !== undefined || (rules.maxBodyBytes !== undefined && contentLength(facts.headers) === undefined);
}

/** A partial body already over the limit (BUFFERED chunks before end of stream). */
export function bodyTooLarge(rules: ValidateRules, size: number): Problem | undefined {
  return rules.maxBodyBytes !== undefined && size > rules.maxBodyBytes ? tooLarge(rules.maxBodyBytes, size) : undefined;
}

const MAX_REPORTED_ERRORS = 20;

/**
 * How deep a body may nest before schema validation. JSON.parse takes any depth, but Ajv recurses with the input
 * through a recursive schema (`items: {$ref: "#"}`): 200,000 levels overflowed the stack, which would make the
 * request an internal error instead of its 400. Real documents stay far below this.
 */
export const MAX_JSON_DEPTH = 128;

/** Checks on the complete body. */
export function validateBody(rules: ValidateRules, body: Buffer): Problem | undefined {
  const large = bodyTooLarge(rules, body.length);
  if (large) return large;
  if (rules.jsonSchema === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (error) {
    // Not JSON.parse's message: V8 quotes the text around the error ("password": hunter2…), and the problem is both
    // answered and logged. Its position is kept when V8 gives one.
    const position = /at position (\d+)/.exec((error as Error).message)?.[1];
    const message = position === undefined ? 'not valid JSON' : `not valid JSON (at position ${position})`;
    return {
      status: 400, type: `${TYPE}invalid-json`, title: 'Request body is not valid JSON',
      detail: message, errors: [{ location: 'body', name: '', message }],
    };
  }
  if (nestsDeeperThan(body, MAX_JSON_DEPTH)) {
    const message = `nests deeper than ${MAX_JSON_DEPTH} levels`;
    return { status: 400, type: `${TYPE}too-deep`, title: 'Request body nests too deeply', detail: message, errors: [{ location: 'body', name: '', message }] };
  }
  const validate = rules.jsonSchema.validate;
  if (validate(json)) return undefined;
  const errors = (validate.errors ?? []).slice(0, MAX_REPORTED_ERRORS).map((e): ProblemItem => {
    const missing = e.keyword === 'required' ? (e.params as { missingProperty?: string }).missingProperty : undefined;
    const extra = e.keyword === 'additionalProperties' ? (e.params as { additionalProperty?: string }).additionalProperty : undefined;
    // Ajv's instancePath is already a JSON pointer; a property name it reports apart is raw text (RFC 6901 escapes).
    const property = missing ?? extra;
    const pointer = property !== undefined ? `${e.instancePath}/${escapePointerToken(property)}` : e.instancePath;
    return { location: 'body', name: pointer || '/', message: e.message ?? e.keyword };
  });
  return {
    status: 400, type: `${TYPE}schema-violation`, title: 'Request body does not match the schema',
    detail: errors.map((e) => `${e.name}: ${e.message}`).join('; '), errors,
  };
}

/** One reference token of a JSON pointer (RFC 6901 §3): `~` as `~0` first, then `/` as `~1`. */
export function escapePointerToken(name: string): string {
  return name.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The application/problem+json document for a Problem. */
export function problemDocument(problem: Problem, instance: string, requestId: string): Buffer {
  return Buffer.from(JSON.stringify({
    type: problem.type, title: problem.title, status: problem.status, detail: problem.detail,
    instance, request_id: requestId, errors: problem.errors,
  }));
}
