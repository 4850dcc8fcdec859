#!/usr/bin/env python3
"""Null QWP egress peer: replays recorded server frames from memory.

usage: replay_peer.py FRAMES_FILE

FRAMES_FILE holds [u32 LE length][payload] records: the SERVER_INFO frame,
then every frame of one query's response up to its terminator (egress.py
records them from quiver). The peer listens on a free loopback port, prints
`replay peer listening on 127.0.0.1:PORT` once the frames are in memory, and
for each connection:

* `/read/v1`: answers the upgrade (101 + `X-QWP-Version: 1`) and SERVER_INFO
  in one send; each QUERY_REQUEST gets the recorded frames with its
  request_id patched in, sent in one `sendall` of a buffer prepared up front.
  From the second query on a connection a CACHE_RESET goes first, as a server
  does when the client asks to reset the symbol dictionary (the recording
  starts from an empty one). The connection stays open for the next query.
* `/write/v4`, `/api/v4/write`: answers the upgrade and ignores the socket,
  so the client's default sender pool can connect.

The SQL text is not looked at: every query gets the same result.
"""
import socket
import struct
import sys
import threading

from qwpws import (CACHE_RESET, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, QUERY_REQUEST,
                   QWP_HEADER_LEN, WITH_REQUEST_ID, FrameReader, accept_key, qwp_frame,
                   read_http_head, ws_header)


def load(path):
    """The recorded payloads, in order."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


class Replay:
    def __init__(self, payloads):
        info = payloads[0]
        self.server_info = ws_header(OP_BINARY, len(info)) + info
        # The whole response as one buffer of WebSocket frames, and where each
        # request_id sits in it.
        self.stream = bytearray()
        self.id_offsets = []
        for p in payloads[1:]:
            self.stream += ws_header(OP_BINARY, len(p))
            if p[QWP_HEADER_LEN] in WITH_REQUEST_ID:
                self.id_offsets.append(len(self.stream) + QWP_HEADER_LEN + 1)
            self.stream += p
        reset = qwp_frame(bytes([CACHE_RESET, 0x01]))
        self.cache_reset = ws_header(OP_BINARY, len(reset)) + reset
        # One response at a time: the id patch is made in the shared buffer.
        self.lock = threading.Lock()

    def respond(self, sock, request_id, first):
        with self.lock:
            for off in self.id_offsets:
                self.stream[off:off + 8] = request_id
            if not first:
                sock.sendall(self.cache_reset)
            sock.sendall(self.stream)

    def serve(self, sock):
        try:
            line, hdrs, rest = read_http_head(sock)
            target = line.split(" ")[1] if " " in line else ""
            resp = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept_key(hdrs.get('sec-websocket-key', ''))}\r\n"
                    "X-QWP-Version: 1\r\n\r\n").encode()
            if target != "/read/v1":
                sock.sendall(resp)
                while sock.recv(1 << 16):
                    pass
                return
            sock.sendall(resp + self.server_info)
            reader = FrameReader(sock, rest)
            queries = 0
            while True:
                _, op, off, n, mask = reader.next()
                payload = reader.payload(off, n, mask)
                if op == OP_CLOSE:
                    code = payload[:2] or struct.pack(">H", 1000)
                    sock.sendall(ws_header(OP_CLOSE, 2) + code)
                    return
                if op == OP_PING:
                    sock.sendall(ws_header(OP_PONG, len(payload)) + payload)
                elif op == OP_BINARY and payload and payload[0] == QUERY_REQUEST:
                    self.respond(sock, payload[1:9], first=queries == 0)
                    queries += 1
                # CREDIT / CANCEL: ignored, the response is already on its way.
        except (EOFError, OSError):
            pass
        finally:
            sock.close()


def main():
    replay = Replay(load(sys.argv[1]))
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print(f"replay peer listening on 127.0.0.1:{srv.getsockname()[1]}", flush=True)
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=replay.serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
