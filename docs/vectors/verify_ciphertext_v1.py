#!/usr/bin/env python3
"""Checks docs/vectors/ciphertext-v1.hex with an implementation independent of Kagi's.

Needs the `cryptography` package (pip install cryptography). Exits non-zero on mismatch.
The inputs are those of docs/ciphertext-format.md ("Test vector").
"""
import pathlib
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

version_key = bytes(range(32))
key_id = bytes.fromhex("0123456789abcdef0123456789abcdef")
salt, nonce = b"\x11" * 32, b"\x22" * 12
header = b"KG" + bytes([1, 1]) + key_id + struct.pack(">I", 2) + salt + nonce
context = sorted({"school": "tokyo-01", "record": "grades"}.items())
encoded = struct.pack(">H", len(context))
for k, v in context:
    encoded += struct.pack(">H", len(k)) + k.encode() + struct.pack(">H", len(v)) + v.encode()
message_key = HKDF(
    algorithm=hashes.SHA256(), length=32, salt=salt, info=b"kagi/v1/message-key" + header[:24]
).derive(version_key)
ciphertext = header + AESGCM(message_key).encrypt(nonce, b"Kagi test vector", header + encoded)
expected = (pathlib.Path(__file__).parent / "ciphertext-v1.hex").read_text().strip()
if ciphertext.hex() != expected:
    sys.exit("mismatch: " + ciphertext.hex())
print("ciphertext-v1.hex verified")
