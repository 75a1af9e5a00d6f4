//! The one `bindgen!` for the provider contract in `wit/`.

// Every Warden interface and no WASI: the host links WASI from
// `wasmtime-wasi` itself. A plugin may leave `session-handler` and
// `discovery` out.
wasmtime::component::bindgen!({
    path: "../wit",
    inline: "
        package warden:host-view;
        world host-view {
            import warden:provider/host@0.1.0;
            import warden:provider/http-client@0.1.0;
            export warden:provider/provider@0.1.0;
            export warden:provider/session-handler@0.1.0;
            export warden:provider/discovery@0.1.0;
        }
    ",
    world: "warden:host-view/host-view",
    imports: { "warden:provider/http-client": async | trappable },
    exports: { default: async },
    with: { "warden:provider/http-client.body": crate::sandbox::ResponseBody },
});
