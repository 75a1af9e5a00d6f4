"""The `{{name}}` Warden plugin in Python. Build: `./build.sh`; try it:
`warden call {{name}}.echo '{"text":"hi"}'`.

componentize-py creates a new Provider object for every call: keep state at
module level (CONFIG), not on `self`. There is no file system at run time:
import every module a call needs here, at the top. A typed error is
`raise Err(types.Error_InvalidInput("..."))`; any other exception is a crash.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

CONFIG = {}


class Provider(exports.Provider):
    def describe(self):
        return types.Description(
            info=types.ProviderInfo(name="{{name}}", version="0.1.0", description="A Warden plugin"),
            capabilities=[
                types.CapabilityDescriptor(
                    id="{{name}}.echo", name="Echo", version="0.1.0",
                    description="Returns its text with the configured prefix",
                    input_schema="[:map [:text :string]]", output_schema="[:map [:text :string]]",
                    metadata="{}", permissions=[], effects=[], provider_kind="", provider_meta="")
            ],
        )

    def init(self, config):
        CONFIG.clear()
        CONFIG.update(json.loads(config))

    def call(self, capability_id, input):
        if capability_id != "{{name}}.echo":
            raise Err(types.Error_NotFound(capability_id))
        text = json.loads(input)["text"]
        if not text:
            raise Err(types.Error_InvalidInput("text is empty"))
        return json.dumps({"text": CONFIG.get("prefix", "") + text})

    def health(self):
        return types.HealthReport(status=types.HealthStatus.HEALTHY, message="")
