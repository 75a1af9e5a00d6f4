"""An OCI client independent of Warden's, for its tests: the Python `oras`
package pushes components in the CNCF Wasm artifact layout, artifacts that
are not components, and cosign keyed signatures (a simple-signing payload
signed with the `cryptography` package, in the `sha256-<digest>.sig` tag).

  oras_cosign.py [--insecure] [--ca CA.pem] [--user U --password P] COMMAND ...
    push-wasm REF FILE            config application/vnd.wasm.config.v0+json, layer application/wasm
    push-other REF FILE           a plain OCI artifact (tar layer), not a component
    sign REF DIGEST KEY.pem       adds a signature of DIGEST (a manifest digest) made with KEY
    sign-other REF DIGEST OTHER KEY.pem   a signature naming digest OTHER, under DIGEST's tag
    tamper REF DIGEST KEY.pem     signs DIGEST's payload, then pushes a changed payload with it

REF is HOST:PORT/REPO:TAG (no scheme).
"""

import argparse
import base64
import json
import os
import sys
import tempfile

import oras.client
import oras.provider
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PAYLOAD_TYPE = "application/vnd.dev.cosignproject.cosign.simplesigning.v1+json"
SIGNATURE = "dev.cosignproject.cosign/signature"


def client(args, host):
    tls = args.ca if args.ca else True
    # docker-registry's htpasswd auth is HTTP basic (no token server).
    backend = "basic" if args.user else "token"
    c = oras.client.OrasClient(hostname=host, insecure=args.insecure, tls_verify=tls,
                               auth_backend=backend)
    if args.user:
        # Basic auth for this client only (login would write Docker's config).
        c.auth.set_basic_auth(args.user, args.password)
    return c


def push(args, ref, files, config=None, annotations=None):
    host = ref.split("/", 1)[0]
    c = client(args, host)
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        names = []
        for (data, name, media_type) in files:
            with open(name, "wb") as f:
                f.write(data)
            names.append(f"{name}:{media_type}")
        kwargs = {}
        if config:
            data, media_type = config
            with open("config.json", "wb") as f:
                f.write(data)
            kwargs["manifest_config"] = f"config.json:{media_type}"
        if annotations:
            with open("annotations.json", "w") as f:
                json.dump(annotations, f)
            kwargs["annotation_file"] = "annotations.json"
        c.push(target=ref, files=names, disable_path_validation=True, quiet=True, **kwargs)


def payload_for(ref, digest):
    repo = ref.rsplit(":", 1)[0]
    return json.dumps({
        "critical": {
            "identity": {"docker-reference": repo},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }).encode()


def sign_bytes(key_path, data):
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()
    return base64.b64encode(key.sign(data)).decode()


def push_signature(args, ref, digest, payload, key_path, sent=None):
    repo = ref.rsplit(":", 1)[0]
    tag = f"{repo}:{digest.replace(':', '-')}.sig"
    sig = sign_bytes(key_path, payload)
    push(args, tag, [(sent or payload, "payload.json", PAYLOAD_TYPE)],
         annotations={"payload.json": {SIGNATURE: sig}})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--ca")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("command")
    p.add_argument("rest", nargs="*")
    args = p.parse_args()
    if args.command == "push-wasm":
        ref, file = args.rest
        data = open(file, "rb").read()
        config = json.dumps({"architecture": "wasm", "os": "wasip2"}).encode()
        push(args, ref, [(data, "component.wasm", "application/wasm")],
             config=(config, "application/vnd.wasm.config.v0+json"))
    elif args.command == "push-other":
        ref, file = args.rest
        push(args, ref, [(open(file, "rb").read(), "data.tar", "application/vnd.oci.image.layer.v1.tar")])
    elif args.command == "sign":
        ref, digest, key = args.rest
        push_signature(args, ref, digest, payload_for(ref, digest), key)
    elif args.command == "sign-other":
        ref, digest, other, key = args.rest
        push_signature(args, ref, digest, payload_for(ref, other), key)
    elif args.command == "tamper":
        ref, digest, key = args.rest
        signed = payload_for(ref, digest)
        changed = signed.replace(b'"optional": null', b'"optional": {"by": "mallory"}')
        assert changed != signed
        push_signature(args, ref, digest, signed, key, sent=changed)
    else:
        sys.exit(f"unknown command {args.command}")


if __name__ == "__main__":
    main()
