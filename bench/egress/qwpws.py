"""Minimal QWP-over-WebSocket pieces shared by egress.py and replay_peer.py.

Standard library only. Just enough of RFC 6455 and QWP egress (SPEC §4) for a
benchmark: no fragmentation on send, no extensions, no TLS.
"""
import base64
import hashlib
import os
import socket
import struct

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# QWP egress message kinds (SPEC §4.2); the kind byte follows the 12-byte header.
QWP_HEADER_LEN = 12
QUERY_REQUEST, RESULT_BATCH, RESULT_END, QUERY_ERROR = 0x10, 0x11, 0x12, 0x13
EXEC_DONE, CACHE_RESET, SERVER_INFO = 0x16, 0x17, 0x18
# Server frames that carry a request_id (i64 LE) right after the kind byte.
WITH_REQUEST_ID = (RESULT_BATCH, RESULT_END, QUERY_ERROR, EXEC_DONE)
TERMINATORS = (RESULT_END, QUERY_ERROR, EXEC_DONE)

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf, pos):
    """Returns (value, next_pos)."""
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def qwp_frame(body):
    """12-byte QWP header (version 1, flags 0, table_count 0) + body."""
    return b"QWP1" + bytes([1, 0]) + struct.pack("<HI", 0, len(body)) + body


def ws_header(opcode, n, mask=None):
    """Header of one FIN frame with an n-byte payload (masked if mask given)."""
    b1 = 0x80 if mask is not None else 0
    if n < 126:
        h = bytes([0x80 | opcode, b1 | n])
    elif n < 65536:
        h = bytes([0x80 | opcode, b1 | 126]) + struct.pack(">H", n)
    else:
        h = bytes([0x80 | opcode, b1 | 127]) + struct.pack(">Q", n)
    return h + (mask or b"")


def xor_mask(payload, mask):
    """payload XOR the repeating 4-byte mask (fast enough for client frames)."""
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")


def client_frame(opcode, payload):
    """A masked client frame (RFC 6455 §5.3)."""
    mask = os.urandom(4)
    return ws_header(opcode, len(payload), mask) + xor_mask(payload, mask)


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def query_request(request_id, sql, query_flags=0):
    """QUERY_REQUEST body (client messages have no QWP header): kind, request_id
    i64, sql, initial_credit 0 (unbounded), no binds, query_flags."""
    s = sql.encode()
    return (bytes([QUERY_REQUEST]) + struct.pack("<q", request_id) + varint(len(s)) + s
            + varint(0) + varint(0) + varint(query_flags))


class FrameReader:
    """Reads WebSocket frames from a socket through one growing buffer.

    `keep=True` keeps every byte received (frames are then (offset, length)
    views into `buf`), which lets a recorder take a large result without
    copying each payload; otherwise consumed bytes are dropped.
    """

    def __init__(self, sock, initial=b"", keep=False):
        self.sock, self.keep = sock, keep
        self.buf = bytearray(initial)
        self.pos = 0

    def _need(self, k):
        while len(self.buf) - self.pos < k:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("peer closed the connection")
            self.buf += chunk

    def next(self):
        """Returns (fin, opcode, payload_offset, payload_length, mask or None);
        the payload is buf[payload_offset:payload_offset + payload_length]."""
        if not self.keep and self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        self._need(2)
        b0, b1 = self.buf[self.pos], self.buf[self.pos + 1]
        n, hlen = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, hlen = struct.unpack_from(">H", self.buf, self.pos + 2)[0], 4
        elif n == 127:
            self._need(10)
            n, hlen = struct.unpack_from(">Q", self.buf, self.pos + 2)[0], 10
        mask = None
        if b1 & 0x80:
            self._need(hlen + 4)
            mask = bytes(self.buf[self.pos + hlen:self.pos + hlen + 4])
            hlen += 4
        self._need(hlen + n)
        off = self.pos + hlen
        self.pos = off + n
        return bool(b0 & 0x80), b0 & 0x0F, off, n, mask

    def payload(self, off, n, mask=None):
        data = bytes(self.buf[off:off + n])
        return xor_mask(data, mask) if mask else data


def read_http_head(sock):
    """Reads an HTTP head; returns (first line, {lowercase header: value}, leftover)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("peer closed during the HTTP handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs, rest


def connect_egress(host, port):
    """Opens /read/v1 with the headers the official client sends; returns
    (sock, bytes already read past the 101), SERVER_INFO still to be read."""
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /read/v1 HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\n"
                  f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
                  f"X-QWP-Version: 1\r\nX-QWP-Max-Version: 1\r\nX-QWP-Accept-Encoding: raw\r\n\r\n"
                  ).encode())
    status, hdrs, rest = read_http_head(sock)
    if status.split()[1:2] != ["101"] or hdrs.get("sec-websocket-accept") != accept_key(key):
        raise RuntimeError(f"egress upgrade refused: {status!r} {hdrs}")
    return sock, rest
