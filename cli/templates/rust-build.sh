#!/bin/sh
# Builds {{name}}.wasm. With rustup's wasm32-wasip2 target:
#   rustup target add wasm32-wasip2
# Without it, from a Warden checkout: cargo xtask build-plugin <this dir> --out {{name}}.wasm
set -e
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2
cp target/wasm32-wasip2/release/{{crate}}.wasm {{name}}.wasm
echo "built {{name}}.wasm; check it with: warden check {{name}}.wasm"
