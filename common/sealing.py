"""Sealed boxes for rotated keys: only the satellite that enrolled can open them.

A satellite makes an X25519 key pair at enrolment; the public half is recorded on its Host.
`seal()` makes an ephemeral X25519 key, derives a 256-bit key with HKDF-SHA256 from the
shared secret (salt: ephemeral public key ‖ recipient public key; info: "boatload seal v1")
and encrypts with ChaCha20-Poly1305 under a random 96-bit nonce, the associated data binding
the box to its purpose (host name and key id). The box is
base64url(ephemeral public key (32) ‖ nonce (12) ‖ ciphertext and tag).
"""
import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INFO = b"boatload seal v1"
RAW = {"encoding": serialization.Encoding.Raw, "format": serialization.PublicFormat.Raw}


class SealError(ValueError):
    """A box that is not for this key, or altered."""


def b64(data):
    return base64.urlsafe_b64encode(data).decode()


def unb64(text):
    return base64.urlsafe_b64decode(text.encode() if isinstance(text, str) else text)


def public_key_from_text(text):
    """The X25519 public key of base64url text; ValueError when it is not 32 bytes."""
    try:
        raw = unb64(text)
    except (ValueError, TypeError):
        raise ValueError("not base64url") from None
    if len(raw) != 32:
        raise ValueError("an X25519 public key has 32 bytes")
    return X25519PublicKey.from_public_bytes(raw)


def new_private_key():
    return X25519PrivateKey.generate()


def private_key_to_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def private_key_from_pem(pem):
    return serialization.load_pem_private_key(pem, password=None)


def public_text(private_key):
    return b64(private_key.public_key().public_bytes(**RAW))


def _key(shared, ephemeral_raw, recipient_raw):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_raw + recipient_raw, info=INFO).derive(shared)


def seal(recipient_text, plaintext, aad):
    recipient = public_key_from_text(recipient_text)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = ephemeral.public_key().public_bytes(**RAW)
    key = _key(ephemeral.exchange(recipient), ephemeral_raw, recipient.public_bytes(**RAW))
    nonce = os.urandom(12)
    return b64(ephemeral_raw + nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext.encode(), aad.encode()))


def open_box(private_key, box, aad):
    try:
        raw = unb64(box)
    except (ValueError, TypeError):
        raise SealError("the box is not base64url") from None
    if len(raw) < 32 + 12 + 16:
        raise SealError("the box is too short")
    ephemeral_raw, nonce, sealed = raw[:32], raw[32:44], raw[44:]
    recipient_raw = private_key.public_key().public_bytes(**RAW)
    key = _key(private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw)), ephemeral_raw, recipient_raw)
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, sealed, aad.encode()).decode()
    except InvalidTag:
        raise SealError("the box is not for this key, or was altered") from None


def next_key_aad(host_name, key_id):
    """The associated data of a rotated secret's box: it opens only as that host's key `key_id`."""
    return f"boatload next_key\n{host_name}\n{key_id}"
