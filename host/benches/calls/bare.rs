//! The baseline: a component called through bare wasmtime on Warden's
//! engine settings, with an empty WASI context and the contract's `host`
//! imports answered by no-ops. What an embedder without Warden would write.

use std::path::Path;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "warden:provider/plugin",
    exports: { default: async },
});

use self::warden::provider::{host, types};

/// A store's data: WASI and its resource table.
pub struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for BareState {}

impl host::Host for BareState {
    fn log(&mut self, _level: host::Level, _message: String) {}
    fn env_var(&mut self, _name: String) -> Result<Option<String>, types::Error> {
        Ok(None)
    }
    fn set_remote_state(&mut self, _state: String) -> Result<(), types::Error> {
        Ok(())
    }
    fn progress(&mut self, _done: u64, _total: Option<u64>, _message: String) {}
    fn note(&mut self, _topic: String, _text: String) {}
    fn lookup_service(&mut self, _name: String) -> Result<Vec<host::ServiceTarget>, types::Error> {
        Ok(Vec::new())
    }
}

/// The same settings Warden arms each call with.
const FUEL: u64 = ::warden::config::DEFAULT_FUEL;
const YIELD_FUEL: u64 = 100_000;

/// The component pre-instantiated, and one warm instance of it.
pub struct Bare {
    engine: Engine,
    pre: PluginPre<BareState>,
    warm: (Store<BareState>, Plugin),
    _ticker: Ticker,
}

impl Bare {
    pub async fn new(path: &Path) -> Bare {
        let engine = ::warden::plugin_engine(4, ::warden::config::DEFAULT_MEMORY).unwrap();
        let component = Component::from_file(&engine, path).unwrap();
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        Plugin::add_to_linker::<_, HasSelf<BareState>>(&mut linker, |s| s).unwrap();
        let pre = PluginPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        let _ticker = Ticker::start(&engine);
        let warm = instance(&engine, &pre).await;
        Bare {
            engine,
            pre,
            warm,
            _ticker,
        }
    }

    /// One call on the warm instance.
    pub async fn call_warm(&mut self, id: &str, input: &str) -> String {
        let (store, plugin) = &mut self.warm;
        arm(store);
        call(store, plugin, id, input).await
    }

    /// One call on a new instance, initialised first.
    pub async fn call_fresh(&self, id: &str, input: &str) -> String {
        let (mut store, plugin) = instance(&self.engine, &self.pre).await;
        call(&mut store, &plugin, id, input).await
    }
}

fn arm(store: &mut Store<BareState>) {
    store.set_fuel(FUEL).unwrap();
    store.set_epoch_deadline(1);
}

async fn call(store: &mut Store<BareState>, plugin: &Plugin, id: &str, input: &str) -> String {
    plugin
        .warden_provider_provider()
        .call_call(store, id, input)
        .await
        .unwrap()
        .unwrap()
}

/// A new store and instance, initialised with an empty configuration.
async fn instance(engine: &Engine, pre: &PluginPre<BareState>) -> (Store<BareState>, Plugin) {
    let state = BareState {
        wasi: WasiCtx::builder().build(),
        table: ResourceTable::new(),
    };
    let mut store = Store::new(engine, state);
    store.fuel_async_yield_interval(Some(YIELD_FUEL)).unwrap();
    store.epoch_deadline_async_yield_and_update(1);
    arm(&mut store);
    let plugin = pre.instantiate_async(&mut store).await.unwrap();
    plugin
        .warden_provider_provider()
        .call_init(&mut store, "{}")
        .await
        .unwrap()
        .unwrap();
    (store, plugin)
}

/// Advances the epoch every 5 ms, as Warden's ticker does.
struct Ticker {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Ticker {
    fn start(engine: &Engine) -> Ticker {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, engine) = (stop.clone(), engine.weak());
        std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(5));
                match engine.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            }
        });
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
