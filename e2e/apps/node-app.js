// The Node.js app the end-to-end suite runs: node core modules only.
//
//   node node-app.js PORT
//
//   GET /cut?length=N&send=M   200 announcing Content-Length N, sends M bytes
//                              of body, then destroys the socket (a crash
//                              mid-body)
//   GET /events/stream?id=ID   server-sent events: "data: one" at once, then
//                              holds the stream open until /release?id=ID,
//                              then "data: two" and the end of the stream
//   GET /release?id=ID         lets stream ID finish; 404 when no such stream
//                              is open (so a test knows it was still open)
//   POST /refuse-upload         413 at once, before reading the body, then
//                              destroys the socket (an app refusing an
//                              upload early)
//   GET /ws/echo (Upgrade)     a minimal RFC 6455 WebSocket server that echoes
//                              text and binary messages and answers close
//   anything else              200 "hello from node"
'use strict';

const crypto = require('crypto');
const http = require('http');

const port = Number(process.argv[2]);
const streams = new Map(); // id -> function that finishes the stream

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://app');
  switch (url.pathname) {
    case '/cut': {
      const length = Number(url.searchParams.get('length'));
      const send = Number(url.searchParams.get('send'));
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': length });
      // Destroy only once the partial body is on the wire.
      res.write(Buffer.alloc(send, 'x'), () => res.socket.destroy());
      return;
    }
    case '/refuse-upload': {
      res.writeHead(413, { 'Content-Type': 'text/plain', 'Connection': 'close' });
      res.end('too large\n', () => req.socket.destroy());
      return;
    }
    case '/events/stream': {
      const id = url.searchParams.get('id') || '';
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      res.write('data: one\n\n');
      streams.set(id, () => {
        streams.delete(id);
        res.end('data: two\n\n');
      });
      req.on('close', () => streams.delete(id));
      return;
    }
    case '/release': {
      const finish = streams.get(url.searchParams.get('id') || '');
      if (!finish) {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('no such open stream\n');
        return;
      }
      finish();
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('released\n');
      return;
    }
    default:
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('hello from node\n');
  }
});

// RFC 6455: the handshake, then frames. Client frames are masked; server
// frames are not.
const wsGUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

server.on('upgrade', (req, socket, head) => {
  const key = req.headers['sec-websocket-key'];
  if (new URL(req.url, 'http://app').pathname !== '/ws/echo' ||
      (req.headers.upgrade || '').toLowerCase() !== 'websocket' || !key) {
    socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  const accept = crypto.createHash('sha1').update(key + wsGUID).digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Accept: ' + accept + '\r\n\r\n');
  let buf = head && head.length ? Buffer.from(head) : Buffer.alloc(0);
  const onData = (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const frame = parseFrame(buf);
      if (!frame) return;
      buf = buf.subarray(frame.size);
      if (frame.opcode === 0x8) { // close: answer it and end
        socket.end(encodeFrame(0x8, frame.payload));
        return;
      }
      if (frame.opcode === 0x9) { // ping
        socket.write(encodeFrame(0xA, frame.payload));
      } else if (frame.opcode === 0x1 || frame.opcode === 0x2) {
        socket.write(encodeFrame(frame.opcode, frame.payload));
      }
    }
  };
  socket.on('data', onData);
  socket.on('error', () => {});
  if (buf.length) onData(Buffer.alloc(0));
});

// parseFrame returns {opcode, payload, size} for the first complete frame in
// buf, or null when more bytes are needed. Fragmented messages are not
// supported: the suite sends single frames.
function parseFrame(buf) {
  if (buf.length < 2) return null;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  const maskLen = masked ? 4 : 0;
  if (buf.length < off + maskLen + len) return null;
  const payload = Buffer.from(buf.subarray(off + maskLen, off + maskLen + len));
  if (masked) {
    const mask = buf.subarray(off, off + 4);
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
  }
  return { opcode, payload, size: off + maskLen + len };
}

function encodeFrame(opcode, payload) {
  let header;
  if (payload.length < 126) {
    header = Buffer.from([0x80 | opcode, payload.length]);
  } else if (payload.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([header, payload]);
}

server.keepAliveTimeout = 65000;
server.listen(port, '127.0.0.1', () => console.log('node app listening on 127.0.0.1:' + port));
