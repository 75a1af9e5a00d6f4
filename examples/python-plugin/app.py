"""A Warden capability provider in Python, built with componentize-py.

Capabilities:
  pyexample.stats  words, lines and characters of a text (pure computation)
  pyexample.greet  a greeting from the plugin's configuration
  pyexample.fetch  GET a URL with urllib: the host decides it by the plugin's
                   network grant (a denial comes back as a typed `denied`)
  pyexample.read   read a file under /data: only a granted directory exists
  pyexample.spin   count to a number: a runaway call stops at the fuel limit
  pyexample.crash  raise an exception (its message reaches the caller)

Build (what `cargo xtask build-guests` runs):
  componentize-py -d ../../wit/plugin -w plugin componentize app -o python-example.wasm

Three traps of componentize-py, avoided here:
- It creates a new `Provider` object for every exported call: state kept on
  `self` in `init` is gone in `call`. Keep it at module level (CONFIG below).
- There is no file system at run time: import every module a call needs up
  front (a module imported inside a call fails), and `encodings.idna` if a
  call resolves names (`socket.getaddrinfo`, urllib).
- A typed error is `raise Err(types.Error_Denied("..."))`; any other exception
  is a crash (a trap whose message the caller sees).
"""

import encodings.idna  # noqa: F401  (name lookups encode with it)
import json
import urllib.error
import urllib.request

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

# Set by `init`; module level, because every call gets a new Provider object.
CONFIG = {}


def stats(args):
    text = args["text"]
    return {"words": len(text.split()), "lines": len(text.splitlines()), "chars": len(text)}


def greet(args):
    return {"greeting": f"{CONFIG.get('greeting', 'Hello')}, {args['name']}!"}


def fetch(args):
    try:
        with urllib.request.urlopen(args["url"], timeout=10) as r:
            return {"status": r.status, "body": r.read().decode(errors="replace")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": ""}
    except urllib.error.URLError as e:
        # The host refused the connection (no grant) or it failed.
        raise Err(types.Error_Denied(f"{args['url']}: {e.reason}"))


def read(args):
    path = args["path"]
    if not path.startswith("/data/"):
        raise Err(types.Error_InvalidInput(f"{path}: only files under /data can be read"))
    try:
        with open(path, encoding="utf-8") as f:
            return {"text": f.read()}
    except OSError as e:
        raise Err(types.Error_Denied(f"{path}: {e.strerror}"))


def spin(args):
    # Busy work until a limit stops it (fuel or time): shows the limits.
    n = 0
    for _ in range(int(args.get("rounds", 10**12))):
        n += 1
    return {"rounds": n}


def steps(args):
    # Progress for the caller (MCP notifications/progress, CLI lines); the
    # host paces the reports, and the last one always goes.
    n = int(args.get("steps", 3))
    for i in range(1, n + 1):
        host.progress(i, n, f"step {i}")
    return {"steps": n}


def crash(args):
    raise ValueError("the Python example fails on purpose: " + str(args.get("why", "")))


CAPABILITIES = {
    "pyexample.stats": (stats, "Words, lines and characters of a text",
                        "[:map [:text :string]]", "[:map [:words :int] [:lines :int] [:chars :int]]"),
    "pyexample.greet": (greet, "A greeting from the configuration",
                        "[:map [:name :string]]", "[:map [:greeting :string]]"),
    "pyexample.fetch": (fetch, "GET a URL (needs a network grant)",
                        "[:map [:url :string]]", "[:map [:status :int] [:body :string]]"),
    "pyexample.read": (read, "Read a text file under /data (needs a directory grant)",
                       "[:map [:path :string]]", "[:map [:text :string]]"),
    "pyexample.spin": (spin, "Count to `rounds` (a runaway call when large)",
                       "[:map [:rounds :int?]]", "[:map [:rounds :int]]"),
    "pyexample.crash": (crash, "Raise an exception", ":any", ":any"),
    "pyexample.steps": (steps, "Report progress `steps` times",
                        "[:map [:steps :int?]]", "[:map [:steps :int]]"),
}


class Provider(exports.Provider):
    def describe(self):
        return types.Description(
            info=types.ProviderInfo(name="python-example", version="0.1.0",
                                    description="A Warden provider written in Python"),
            capabilities=[
                types.CapabilityDescriptor(
                    id=cap_id, name=cap_id.split(".")[1], version="0.1.0", description=d,
                    input_schema=i, output_schema=o, metadata="{}", permissions=[],
                    effects=["call:external_api"] if cap_id == "pyexample.fetch" else [],
                    provider_kind="", provider_meta="")
                for cap_id, (_, d, i, o) in CAPABILITIES.items()
            ],
        )

    def init(self, config):
        CONFIG.clear()
        CONFIG.update(json.loads(config))
        host.log(host.Level.INFO, f"python-example configured with {sorted(CONFIG)}")

    def call(self, capability_id, input):
        entry = CAPABILITIES.get(capability_id)
        if entry is None:
            raise Err(types.Error_NotFound(capability_id))
        try:
            args = json.loads(input)
        except ValueError as e:
            raise Err(types.Error_InvalidInput(str(e)))
        return json.dumps(entry[0](args))

    def health(self):
        return types.HealthReport(status=types.HealthStatus.HEALTHY, message="")
