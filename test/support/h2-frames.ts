// A hand-written HTTP/2 client over node:net for abuse tests: it writes whatever frames it is told to, in whatever
// order, and never reads unless asked — what node:http2 (nghttp2 underneath) refuses to do on its side: exceed the
// peer's limits, leave a header block open, keep a zero window, flood control frames.

import { connect, type Socket } from 'node:net';

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const SETTING = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export function settingsFrame(settings: readonly (readonly [number, number])[]): Buffer {
  const payload = Buffer.alloc(6 * settings.length);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, payload);
}

export function rstStreamFrame(streamId: number, code = 8 /* CANCEL */): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, streamId, payload);
}

/** HPACK integer with an n-bit prefix (RFC 7541 §5.1), the prefix's high bits set to `high`. */
function hpackInteger(value: number, prefixBits: number, high = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([high | value]);
  const out = [high | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

/** A header block of literals without indexing, new names, no Huffman: every byte of it is what the test chose. */
export function headerBlock(headers: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00]), hpackInteger(n.length, 7), n, hpackInteger(v.length, 7), v);
  }
  return Buffer.concat(parts);
}

/** The request headers of a gRPC call to `path`. */
export function grpcRequestHeaders(path: string, extra: readonly (readonly [string, string])[] = []): (readonly [string, string])[] {
  return [[':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', 'portcullis'], ['content-type', 'application/grpc'], ['te', 'trailers'], ...extra];
}

/** A gRPC length-prefixed message (uncompressed). */
export function grpcMessage(body: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

export interface RawH2Connection {
  readonly socket: Socket;
  /** Writes frames; resolves when the socket took them (false: it is closed). */
  write(...frames: Buffer[]): Promise<boolean>;
  /** Bytes the server has sent so far (0 for a connection made with `read: false` until it resumes). */
  readonly received: () => number;
  /** Whether the server closed the connection (FIN, reset or GOAWAY then FIN). */
  readonly closed: () => boolean;
  /** The error code of the server's GOAWAY, if it sent one and this side read it. */
  readonly goaway: () => number | undefined;
  close(): void;
}

/**
 * Connects, sends the preface and `settings` (none with `preface: false`). With `read: false` the socket is paused:
 * nothing the server sends is read, so TCP backs up behind its writes, and a close by the server goes unseen; else
 * every frame is parsed for GOAWAY and the bytes counted. It never answers a PING nor grants window.
 */
export function rawH2Connect(port: number, options: { settings?: readonly (readonly [number, number])[]; read?: boolean; preface?: boolean } = {}): Promise<RawH2Connection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = 0;
    let closed = false;
    let goaway: number | undefined;
    let pending: Buffer = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.setMaxListeners(0); // each pending write() waits on 'close'
    socket.on('close', () => (closed = true));
    socket.once('connect', () => {
      if (options.read === false) socket.pause();
      else {
        socket.on('data', (chunk: Buffer) => {
          received += chunk.length;
          pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
          while (pending.length >= 9) {
            const length = pending.readUIntBE(0, 3);
            if (pending.length < 9 + length) break;
            if (pending[3] === FRAME.GOAWAY && length >= 8) goaway = pending.readUInt32BE(13);
            pending = pending.subarray(9 + length);
          }
        });
      }
      if (options.preface !== false) socket.write(Buffer.concat([PREFACE, settingsFrame(options.settings ?? [])]));
      resolve({
        socket,
        // Resolves once the kernel took the bytes, or at once with false when the socket is closed: a server that
        // stopped reading (it is the one under test) would otherwise leave the writer waiting for ever.
        write: (...frames) => new Promise((done) => {
          if (socket.destroyed || !socket.writable) return done(false);
          const onClose = (): void => done(false);
          socket.once('close', onClose);
          socket.write(Buffer.concat(frames), (error) => {
            socket.off('close', onClose);
            done(!error);
          });
        }),
        received: () => received,
        closed: () => closed,
        goaway: () => goaway,
        close: () => void socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}
