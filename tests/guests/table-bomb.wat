;; A hostile provider written directly in WebAssembly text: its one
;; capability grows its function table without end (Rust cannot emit
;; `table.grow`). `cargo xtask build-guests` embeds the
;; `warden:provider/plugin` world and encodes it as a component.
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (global $heap (mut i32) (i32.const 4096))

  ;; Strings.
  (data (i32.const 1024) "tablebomb")
  (data (i32.const 1040) "0.1.0")
  (data (i32.const 1056) "grows its table without end")
  (data (i32.const 1088) "tablebomb.grow")
  (data (i32.const 1104) "Grow the table")
  (data (i32.const 1120) ":any")
  (data (i32.const 1128) "{}")

  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    ;; A bump allocator, aligned to 8.
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.const 16)))))
    (local.get $p))

  ;; describe() -> description, returned through memory at 256.
  (func (export "warden:provider/provider@0.1.0#describe") (result i32)
    ;; info: name, version, description
    (i32.store (i32.const 256) (i32.const 1024)) (i32.store (i32.const 260) (i32.const 9))
    (i32.store (i32.const 264) (i32.const 1040)) (i32.store (i32.const 268) (i32.const 5))
    (i32.store (i32.const 272) (i32.const 1056)) (i32.store (i32.const 276) (i32.const 27))
    ;; capabilities: one descriptor at 512
    (i32.store (i32.const 280) (i32.const 512)) (i32.store (i32.const 284) (i32.const 1))
    ;; id, name, version, description, input-schema, output-schema, metadata
    (i32.store (i32.const 512) (i32.const 1088)) (i32.store (i32.const 516) (i32.const 14))
    (i32.store (i32.const 520) (i32.const 1104)) (i32.store (i32.const 524) (i32.const 14))
    (i32.store (i32.const 528) (i32.const 1040)) (i32.store (i32.const 532) (i32.const 5))
    (i32.store (i32.const 536) (i32.const 1056)) (i32.store (i32.const 540) (i32.const 27))
    (i32.store (i32.const 544) (i32.const 1120)) (i32.store (i32.const 548) (i32.const 4))
    (i32.store (i32.const 552) (i32.const 1120)) (i32.store (i32.const 556) (i32.const 4))
    (i32.store (i32.const 560) (i32.const 1128)) (i32.store (i32.const 564) (i32.const 2))
    ;; permissions, effects, provider-kind, provider-meta: empty (already zero)
    (i32.const 256))

  ;; init(config) -> result<_, error>: ok (a zeroed result at 2048).
  (func (export "warden:provider/provider@0.1.0#init") (param i32 i32) (result i32)
    (i32.store8 (i32.const 2048) (i32.const 0))
    (i32.const 2048))

  ;; call(id, input): grow the table by 1000 entries until refused, then trap.
  (func (export "warden:provider/provider@0.1.0#call") (param i32 i32 i32 i32) (result i32)
    (loop $grow
      (br_if $grow
        (i32.ne (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1))))
    unreachable)

  ;; health() -> health-report: healthy, "" (zeroed at 2064).
  (func (export "warden:provider/provider@0.1.0#health") (result i32)
    (i32.store8 (i32.const 2064) (i32.const 0))
    (i32.store (i32.const 2068) (i32.const 0))
    (i32.store (i32.const 2072) (i32.const 0))
    (i32.const 2064))
)
