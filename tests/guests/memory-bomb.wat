;; A hostile provider written directly in WebAssembly text: besides the
;; memory the canonical ABI uses, its module defines three more (Rust cannot
;; emit several memories), and its one capability grows all three, 16 pages
;; at a time, until every growth is refused. It returns the pages it got:
;; under a summed limit that is at most `limits.memory` in all, not that much
;; per memory. `cargo xtask build-guests` embeds the `warden:provider/plugin`
;; world and encodes it as a component.
(module
  (memory (export "memory") 1)
  (memory $m1 0)
  (memory $m2 0)
  (memory $m3 0)
  (global $heap (mut i32) (i32.const 4096))

  ;; Strings.
  (data (i32.const 1024) "memorybomb")
  (data (i32.const 1040) "0.1.0")
  (data (i32.const 1056) "grows extra memories until refused")
  (data (i32.const 1104) "memorybomb.grow")
  (data (i32.const 1120) "Grow memories")
  (data (i32.const 1136) ":any")
  (data (i32.const 1144) "{}")

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
    (i32.store (i32.const 256) (i32.const 1024)) (i32.store (i32.const 260) (i32.const 10))
    (i32.store (i32.const 264) (i32.const 1040)) (i32.store (i32.const 268) (i32.const 5))
    (i32.store (i32.const 272) (i32.const 1056)) (i32.store (i32.const 276) (i32.const 34))
    ;; capabilities: one descriptor at 512
    (i32.store (i32.const 280) (i32.const 512)) (i32.store (i32.const 284) (i32.const 1))
    ;; id, name, version, description, input-schema, output-schema, metadata
    (i32.store (i32.const 512) (i32.const 1104)) (i32.store (i32.const 516) (i32.const 15))
    (i32.store (i32.const 520) (i32.const 1120)) (i32.store (i32.const 524) (i32.const 13))
    (i32.store (i32.const 528) (i32.const 1040)) (i32.store (i32.const 532) (i32.const 5))
    (i32.store (i32.const 536) (i32.const 1056)) (i32.store (i32.const 540) (i32.const 34))
    (i32.store (i32.const 544) (i32.const 1136)) (i32.store (i32.const 548) (i32.const 4))
    (i32.store (i32.const 552) (i32.const 1136)) (i32.store (i32.const 556) (i32.const 4))
    (i32.store (i32.const 560) (i32.const 1144)) (i32.store (i32.const 564) (i32.const 2))
    ;; permissions, effects, provider-kind, provider-meta: empty (already zero)
    (i32.const 256))

  ;; init(config) -> result<_, error>: ok (a zeroed result at 2048).
  (func (export "warden:provider/provider@0.1.0#init") (param i32 i32) (result i32)
    (i32.store8 (i32.const 2048) (i32.const 0))
    (i32.const 2048))

  ;; call(id, input) -> result<string, error>: grows $m1, $m2 and $m3 in
  ;; turn until none grows, then returns the pages it got as a JSON number.
  (func (export "warden:provider/provider@0.1.0#call") (param i32 i32 i32 i32) (result i32)
    (local $pages i32) (local $progress i32) (local $p i32) (local $n i32)
    (loop $round
      (local.set $progress (i32.const 0))
      (if (i32.ne (memory.grow $m1 (i32.const 16)) (i32.const -1))
        (then (local.set $pages (i32.add (local.get $pages) (i32.const 16)))
              (local.set $progress (i32.const 1))))
      (if (i32.ne (memory.grow $m2 (i32.const 16)) (i32.const -1))
        (then (local.set $pages (i32.add (local.get $pages) (i32.const 16)))
              (local.set $progress (i32.const 1))))
      (if (i32.ne (memory.grow $m3 (i32.const 16)) (i32.const -1))
        (then (local.set $pages (i32.add (local.get $pages) (i32.const 16)))
              (local.set $progress (i32.const 1))))
      (br_if $round (local.get $progress)))
    ;; The decimal digits of $pages, written backwards ending at 3020.
    (local.set $p (i32.const 3020))
    (local.set $n (local.get $pages))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (i32.store8 (i32.const 2080) (i32.const 0))
    (i32.store (i32.const 2084) (local.get $p))
    (i32.store (i32.const 2088) (i32.sub (i32.const 3020) (local.get $p)))
    (i32.const 2080))

  ;; health() -> health-report: healthy, "" (zeroed at 2064).
  (func (export "warden:provider/provider@0.1.0#health") (result i32)
    (i32.store8 (i32.const 2064) (i32.const 0))
    (i32.store (i32.const 2068) (i32.const 0))
    (i32.store (i32.const 2072) (i32.const 0))
    (i32.const 2064))
)
