// The `{{name}}` Warden plugin in JavaScript. Build: `npm install && node
// build.mjs`; try it: `warden call {{name}}.echo '{"text":"hi"}'`.
//
// A typed error is `throw { tag: "invalid-input", val: "why" }`; a thrown
// Error is a crash. The engine needs a few million units of fuel to load.

let config = {};

export const provider = {
  describe() {
    return {
      info: { name: "{{name}}", version: "0.1.0", description: "A Warden plugin" },
      capabilities: [{
        id: "{{name}}.echo", name: "Echo", version: "0.1.0",
        description: "Returns its text with the configured prefix",
        inputSchema: "[:map [:text :string]]", outputSchema: "[:map [:text :string]]",
        metadata: "{}", permissions: [], effects: [], providerKind: "", providerMeta: "",
      }],
    };
  },
  init(text) {
    config = JSON.parse(text);
  },
  call(id, input) {
    if (id !== "{{name}}.echo") throw { tag: "not-found", val: id };
    const { text } = JSON.parse(input);
    if (!text) throw { tag: "invalid-input", val: "text is empty" };
    return JSON.stringify({ text: (config.prefix ?? "") + text });
  },
  health() {
    return { status: "healthy", message: "" };
  },
};
