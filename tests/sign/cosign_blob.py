"""Keys and detached signatures in the layout `cosign sign-blob` uses, made
with the Python `cryptography` package: an implementation of the format
independent of Warden's, for its tests.

  cosign_blob.py keygen p256|ed25519 NAME   NAME.key (PKCS#8 PEM), NAME.pub (SPKI PEM)
  cosign_blob.py sign NAME.key FILE         FILE.sig: base64 of the signature over FILE's bytes
                                            (ECDSA P-256 with SHA-256, DER; or Ed25519)
  cosign_blob.py verify NAME.pub FILE       exit 0 if FILE.sig verifies, 1 if not
"""

import base64
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


def keygen(alg, name):
    key = ec.generate_private_key(ec.SECP256R1()) if alg == "p256" else ed25519.Ed25519PrivateKey.generate()
    with open(name + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(name + ".pub", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def sign(key_path, file):
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(file, "rb") as f:
        data = f.read()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    else:
        sig = key.sign(data)
    with open(file + ".sig", "w") as f:
        f.write(base64.b64encode(sig).decode() + "\n")


def verify(pub_path, file):
    with open(pub_path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    with open(file, "rb") as f:
        data = f.read()
    with open(file + ".sig") as f:
        sig = base64.b64decode(f.read().strip())
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(sig, data)
    except InvalidSignature:
        return 1
    return 0


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "keygen":
        keygen(*args)
    elif cmd == "sign":
        sign(*args)
    else:
        sys.exit(verify(*args))
