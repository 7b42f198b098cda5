;; The near-duplicate gate's WebAssembly SIMD kernel: exact highest dot product (cosine, for unit
;; vectors) of queries against rows of float32 vectors. `vector-index.ts` lays out the memory and calls
;; it; `npm run build:kernel` assembles this file (wabt) into `vectors.wasm.ts`, and a test checks they
;; agree.
;;
;; Vectors are rows of `d4` × 4 float32 (16 · d4 bytes), 16-byte aligned; queries are consecutive rows.
;; `best` holds one float32 per query (the highest score so far) and `idx` one int32 (its row): the
;; caller sets `best` to -inf before the first range, so ranges can be scanned one after the other (the
;; caller walks the pool in blocks that stay in the CPU's cache). A row only replaces the best when its
;; score is strictly higher, so ties go to the earliest row, as in a plain loop.
(module
  (import "env" "memory" (memory 1))

  ;; The sum of the four lanes of an accumulator: (l0 + l1) + (l2 + l3).
  (func $sum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; top4(q, rows, j, to, d4, best, idx): 4 queries (rows at q) against rows [j, to) of `rows`; each row
  ;; is loaded once for the four (the pool streams from memory, the queries stay in registers' reach).
  (func (export "top4")
    (param $q i32) (param $rows i32) (param $j i32) (param $to i32) (param $d4 i32) (param $best i32)
    (param $idx i32)
    (local $row i32) (local $k i32) (local $qa i32) (local $pa i32) (local $pv v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $b0 f32) (local $b1 f32) (local $b2 f32) (local $b3 f32) (local $s f32)
    (local.set $row (i32.shl (local.get $d4) (i32.const 4)))
    (local.set $b0 (f32.load offset=0 (local.get $best)))
    (local.set $b1 (f32.load offset=4 (local.get $best)))
    (local.set $b2 (f32.load offset=8 (local.get $best)))
    (local.set $b3 (f32.load offset=12 (local.get $best)))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $j) (local.get $to)))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0))
        (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $pa (i32.add (local.get $rows) (i32.mul (local.get $j) (local.get $row))))
        (local.set $qa (local.get $q))
        (local.set $k (local.get $d4))
        (loop $dims
          (local.set $pv (v128.load (local.get $pa)))
          (local.set $a0
            (f32x4.add (local.get $a0) (f32x4.mul (local.get $pv) (v128.load (local.get $qa)))))
          (local.set $a1
            (f32x4.add (local.get $a1)
              (f32x4.mul (local.get $pv) (v128.load (i32.add (local.get $qa) (local.get $row))))))
          (local.set $a2
            (f32x4.add (local.get $a2)
              (f32x4.mul (local.get $pv)
                (v128.load (i32.add (local.get $qa) (i32.shl (local.get $row) (i32.const 1)))))))
          (local.set $a3
            (f32x4.add (local.get $a3)
              (f32x4.mul (local.get $pv)
                (v128.load (i32.add (local.get $qa) (i32.mul (local.get $row) (i32.const 3)))))))
          (local.set $pa (i32.add (local.get $pa) (i32.const 16)))
          (local.set $qa (i32.add (local.get $qa) (i32.const 16)))
          (br_if $dims (local.tee $k (i32.sub (local.get $k) (i32.const 1)))))
        (local.set $s (call $sum (local.get $a0)))
        (if (f32.gt (local.get $s) (local.get $b0))
          (then (local.set $b0 (local.get $s)) (i32.store offset=0 (local.get $idx) (local.get $j))))
        (local.set $s (call $sum (local.get $a1)))
        (if (f32.gt (local.get $s) (local.get $b1))
          (then (local.set $b1 (local.get $s)) (i32.store offset=4 (local.get $idx) (local.get $j))))
        (local.set $s (call $sum (local.get $a2)))
        (if (f32.gt (local.get $s) (local.get $b2))
          (then (local.set $b2 (local.get $s)) (i32.store offset=8 (local.get $idx) (local.get $j))))
        (local.set $s (call $sum (local.get $a3)))
        (if (f32.gt (local.get $s) (local.get $b3))
          (then (local.set $b3 (local.get $s)) (i32.store offset=12 (local.get $idx) (local.get $j))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $rows)))
    (f32.store offset=0 (local.get $best) (local.get $b0))
    (f32.store offset=4 (local.get $best) (local.get $b1))
    (f32.store offset=8 (local.get $best) (local.get $b2))
    (f32.store offset=12 (local.get $best) (local.get $b3)))

  ;; top1(q, rows, j, to, d4, best, idx): one query against rows [j, to).
  (func (export "top1")
    (param $q i32) (param $rows i32) (param $j i32) (param $to i32) (param $d4 i32) (param $best i32)
    (param $idx i32)
    (local $row i32) (local $k i32) (local $qa i32) (local $pa i32) (local $a v128) (local $b f32)
    (local $s f32)
    (local.set $row (i32.shl (local.get $d4) (i32.const 4)))
    (local.set $b (f32.load (local.get $best)))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $j) (local.get $to)))
        (local.set $a (v128.const i32x4 0 0 0 0))
        (local.set $pa (i32.add (local.get $rows) (i32.mul (local.get $j) (local.get $row))))
        (local.set $qa (local.get $q))
        (local.set $k (local.get $d4))
        (loop $dims
          (local.set $a
            (f32x4.add (local.get $a)
              (f32x4.mul (v128.load (local.get $pa)) (v128.load (local.get $qa)))))
          (local.set $pa (i32.add (local.get $pa) (i32.const 16)))
          (local.set $qa (i32.add (local.get $qa) (i32.const 16)))
          (br_if $dims (local.tee $k (i32.sub (local.get $k) (i32.const 1)))))
        (local.set $s (call $sum (local.get $a)))
        (if (f32.gt (local.get $s) (local.get $b))
          (then (local.set $b (local.get $s)) (i32.store (local.get $idx) (local.get $j))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $rows)))
    (f32.store (local.get $best) (local.get $b)))
)
