import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const require = createRequire(import.meta.url);
// protobufjs' descriptor extension is CommonJS without types for this entry point.
const descriptor = require('protobufjs/ext/descriptor') as {
  FileDescriptorSet: { decode(buf: Uint8Array): unknown; toObject(msg: unknown, opts: object): FileDescriptorSetObject; fromObject(obj: unknown): unknown };
};
/** protobufjs with the descriptor extension loaded (it adds Root.fromDescriptor). */
const protobuf = require('protobufjs') as {
  Root: { fromDescriptor(set: unknown): ProtobufRoot };
};
interface ProtobufType {
  encode(message: unknown): { finish(): Uint8Array };
  decode(bytes: Uint8Array): unknown;
}
interface ProtobufRoot { resolveAll(): void; lookupType(name: string): ProtobufType }

interface FieldObject { name: string; number: number; label: string; type: string; typeName?: string; jsonName?: string }
interface EnumObject { name: string; value: { name: string; number: number }[] }
interface MessageObject { name: string; field?: FieldObject[]; nestedType?: MessageObject[]; enumType?: EnumObject[] }
interface FileObject { name: string; package?: string; messageType?: MessageObject[]; sourceCodeInfo?: unknown }
interface FileDescriptorSetObject { file: FileObject[] }

/** Built by scripts/protos.sh (buf) from the pinned @grpc/grpc-js-xds copy of Envoy's API. */
const DESCRIPTOR_SET = fileURLToPath(new URL('../../proto/envoy.binpb', import.meta.url));

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

/**
 * The one place where the packaged API is behind Envoy's. The @grpc/grpc-js-xds copy predates two
 * rate limit additions (envoyproxy/envoy PR #37567 and the WEEK unit, Dec 2024), which Envoy 1.33+
 * sends and understands:
 *   - RateLimitDescriptor.hits_addend = 3 (google.protobuf.UInt64Value), per-descriptor hits;
 *   - RateLimitResponse.RateLimit.Unit.WEEK = 7.
 * Without the first, protobufjs would silently drop the field; without the second, WEEK could not
 * be encoded. test/e2e/ratelimit.test.ts proves both against a real Envoy.
 */
export function patchMissingRateLimitFields(set: FileDescriptorSetObject): void {
  const file = (name: string): FileObject => {
    const f = set.file.find((x) => x.name === name);
    if (!f) throw new Error(`protos: ${name} missing from the descriptor set`);
    return f;
  };
  const message = (list: MessageObject[] | undefined, name: string): MessageObject => {
    const m = list?.find((x) => x.name === name);
    if (!m) throw new Error(`protos: message ${name} missing`);
    return m;
  };
  const common = message(file('envoy/extensions/common/ratelimit/v3/ratelimit.proto').messageType, 'RateLimitDescriptor');
  if (!common.field?.some((f) => f.number === 3)) {
    (common.field ??= []).push({
      name: 'hits_addend', number: 3, label: 'LABEL_OPTIONAL', type: 'TYPE_MESSAGE',
      typeName: '.google.protobuf.UInt64Value', jsonName: 'hitsAddend',
    });
  }
  const response = message(file('envoy/service/ratelimit/v3/rls.proto').messageType, 'RateLimitResponse');
  const unit = message(response.nestedType, 'RateLimit').enumType?.find((e) => e.name === 'Unit');
  if (!unit) throw new Error('protos: RateLimitResponse.RateLimit.Unit missing');
  if (!unit.value.some((v) => v.number === 7)) unit.value.push({ name: 'WEEK', number: 7 });
}

let cached: grpc.GrpcObject | undefined;
let patchedSet: FileDescriptorSetObject | undefined;

function loadPatchedSet(): FileDescriptorSetObject {
  if (patchedSet) return patchedSet;
  const set = descriptor.FileDescriptorSet.toObject(descriptor.FileDescriptorSet.decode(readFileSync(DESCRIPTOR_SET)), {
    enums: String, longs: String, defaults: false,
  });
  patchMissingRateLimitFields(set);
  // Source locations (comments) are most of the set and nothing here reads them: not kept for the process's life.
  for (const file of set.file) delete file.sourceCodeInfo;
  patchedSet = set;
  return set;
}

/** The Envoy API package tree for grpc-js, patched, loaded once per process. */
export function loadEnvoyApi(): grpc.GrpcObject {
  if (cached) return cached;
  const definition = protoLoader.loadFileDescriptorSetFromObject(loadPatchedSet() as never, LOADER_OPTIONS);
  cached = grpc.loadPackageDefinition(definition);
  return cached;
}

/** protobufjs types of the patched set, built once per process: answers encoded as built, ext_proc requests decoded as is. */
let types: ProtobufRoot | undefined;

function protobufTypes(): ProtobufRoot {
  if (!types) {
    types = protobuf.Root.fromDescriptor(descriptor.FileDescriptorSet.fromObject(loadPatchedSet()));
    types.resolveAll();
  }
  return types;
}

/**
 * `service` with `method`'s answers encoded as the handler built them, in protobufjs' own shape: snake_case names,
 * enums as numbers, maps (a Struct's `fields`) as repeated { key, value } entries, bytes as Buffers. proto-loader's
 * serializer would first copy every answer with fromObject (to turn enum names into numbers), a visible share of a
 * call in the profile (docs/benchmarks.md). Each handler's wire mapping builds that shape;
 * test/unit/server/protos.test.ts round-trips an answer of each service through the decoder. An answer the handler
 * already encoded (authz-handler's memoized allow, extproc-encoder's phase answers) goes out as is.
 */
function encodingAsBuilt(service: grpc.ServiceDefinition, method: string, responseType: string): grpc.ServiceDefinition {
  const response = protobufTypes().lookupType(responseType);
  return {
    ...service,
    [method]: {
      ...service[method]!,
      responseSerialize: (value: unknown): Buffer => {
        if (Buffer.isBuffer(value)) return value;
        const bytes = response.encode(value).finish();
        return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      },
    },
  };
}

/**
 * `service` with `method`'s requests handed over as protobufjs decodes them, without proto-loader's toObject copy
 * (a share of every ext_proc message's allocations). The shape differs from toObject's: an unset message field is
 * null, an unset scalar reads its default (0, '', false, an empty array for bytes) from the prototype, and a oneof
 * is read from its virtual field (`request`, a Value's `kind`). extproc-handler's WireProcessingRequest describes it.
 */
function decodingAsIs(service: grpc.ServiceDefinition, method: string, requestType: string): grpc.ServiceDefinition {
  const request = protobufTypes().lookupType(requestType);
  return { ...service, [method]: { ...service[method]!, requestDeserialize: (bytes: Buffer): unknown => request.decode(bytes) } };
}

export function rateLimitServiceDefinition(): grpc.ServiceDefinition {
  const services = (loadEnvoyApi() as unknown as EnvoyServices).envoy.service;
  return encodingAsBuilt(services.ratelimit.v3.RateLimitService.service, 'ShouldRateLimit', 'envoy.service.ratelimit.v3.RateLimitResponse');
}

interface EnvoyServices {
  envoy: {
    service: {
      ratelimit: { v3: { RateLimitService: grpc.ServiceClientConstructor } };
      auth: { v3: { Authorization: grpc.ServiceClientConstructor } };
      ext_proc: { v3: { ExternalProcessor: grpc.ServiceClientConstructor } };
    };
  };
}

export function authorizationServiceDefinition(): grpc.ServiceDefinition {
  const services = (loadEnvoyApi() as unknown as EnvoyServices).envoy.service;
  return encodingAsBuilt(services.auth.v3.Authorization.service, 'Check', 'envoy.service.auth.v3.CheckResponse');
}

export function externalProcessorServiceDefinition(): grpc.ServiceDefinition {
  const services = (loadEnvoyApi() as unknown as EnvoyServices).envoy.service;
  const process = encodingAsBuilt(services.ext_proc.v3.ExternalProcessor.service, 'Process', 'envoy.service.ext_proc.v3.ProcessingResponse');
  return decodingAsIs(process, 'Process', 'envoy.service.ext_proc.v3.ProcessingRequest');
}
