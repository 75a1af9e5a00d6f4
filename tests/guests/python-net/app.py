"""A small Warden provider in Python (componentize-py), using the standard
library's networking: `urllib` and `socket`. Its name lookups and connections
go through the host, which decides each by the plugin's grants.

componentize-py has no file system at run time: every module a call needs is
imported here, up front (`encodings.idna` for `socket.getaddrinfo`)."""

import encodings.idna  # noqa: F401  (getaddrinfo encodes names with it)
import json
import socket
import sys
import urllib.error
import urllib.request

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types


def capability(cap_id, description, input_schema):
    return types.CapabilityDescriptor(
        id=cap_id,
        name=cap_id,
        version="1.0.0",
        description=description,
        input_schema=input_schema,
        output_schema=":any",
        metadata="{}",
        permissions=[],
        effects=["call:external_api"],
        provider_kind="",
        provider_meta="",
    )


def fetch(args):
    try:
        with urllib.request.urlopen(args["url"], timeout=10) as r:
            return {"status": r.status, "body": r.read().decode()}
    except urllib.error.URLError as e:
        raise Err(types.Error_Denied(f"{args['url']}: {e.reason}"))


def connect(args):
    try:
        with socket.create_connection((args["host"], args["port"]), timeout=10) as s:
            s.sendall(args["send"].encode())
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
            return {"received": b"".join(chunks).decode()}
    except OSError as e:
        raise Err(types.Error_Denied(f"{args['host']}:{args['port']}: {e}"))


def resolve(args):
    try:
        infos = socket.getaddrinfo(args["name"], args.get("port", 80), type=socket.SOCK_STREAM)
        return {"addresses": sorted({info[4][0] for info in infos})}
    except OSError as e:
        raise Err(types.Error_Denied(f"{args['name']}: {e}"))


def leave(args):
    sys.exit(args.get("code", 3))


def crash(args):
    raise ValueError("the python guest fails on purpose: " + args.get("why", ""))


CAPABILITIES = {
    "py.fetch": (fetch, "GET a URL with urllib", "[:map [:url :string]]"),
    "py.connect": (
        connect,
        "Send text over TCP with socket.create_connection and read the answer",
        "[:map [:host :string] [:port :int] [:send :string]]",
    ),
    "py.resolve": (resolve, "Look a name up with socket.getaddrinfo", "[:map [:name :string] [:port :int?]]"),
    "py.crash": (crash, "Raise an exception", ":any"),
    "py.exit": (leave, "Call sys.exit", ":any"),
}


class Provider(exports.Provider):
    def describe(self):
        return types.Description(
            info=types.ProviderInfo(
                name="python-net",
                version="1.0.0",
                description="Networking from Python's standard library",
            ),
            capabilities=[capability(k, d, s) for k, (_, d, s) in CAPABILITIES.items()],
        )

    def init(self, config):
        return None

    def call(self, capability_id, input):
        entry = CAPABILITIES.get(capability_id)
        if entry is None:
            raise Err(types.Error_NotFound(capability_id))
        return json.dumps(entry[0](json.loads(input)))

    def health(self):
        return types.HealthReport(status=types.HealthStatus.HEALTHY, message="")
