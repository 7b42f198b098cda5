;; The gate's WebAssembly SIMD kernel: bit-parallel LCS (Allison-Dix / Hyyrö) of up to 32 candidates at
;; once against a range of pool instructions, then, per candidate, the ROUGE-L scores, the top k and
;; NumPy's pairwise sums of the scores. `lcs-wasm.ts` lays out the memory and calls it; `npm run
;; build:kernel` assembles this file (wabt) into `kernel.wasm.ts`, and a test checks they agree.
;;
;; Layout (byte addresses, chosen by the caller): `offsets` holds the token index where each instruction
;; starts (documents + 1 int32), `tokens` the token ids (int32), `lengthIds` each instruction's length id
;; (int32, an index into the pool's distinct token counts), `rowOf` each token id's row of `masks`
;; (int16; row 0 is all zeros), `masks` 64-byte rows with a candidate's bit i set in its lane where its
;; i-th token is the row's token, `full` one such row with every lane's bits of its candidate's length
;; set, followed by each lane's m + 1 (int16; m: the candidate's token count).
(module
  (import "env" "memory" (memory 1))

  ;; scan16(docFrom, docTo, offsets, tokens, lengthIds, rowOf, masks, full, hist, out, laneBytes, scratch):
  ;; 16 candidates of 1 to 32 tokens, one per 32-bit lane, against instructions [docFrom, docTo). For
  ;; each instruction d, of length id r (int32 at lengthIds + 4 d; see TokenPool.lengthsById):
  ;; - byte c of row hist + 32 r is raised to candidate c's LCS: per length the longest LCS, from which
  ;;   the caller reads the highest score;
  ;; - candidate c's score index r (m + 1) + lcs, into its table of scores by length and LCS, is stored
  ;;   as int16 at out + c laneBytes + 2 d, for `score` (by way of `scratch`, 512 bytes, and `transpose`).
  ;; Per pool token t: U = V & M[t]; V = (V + U) | (V - U); afterwards LCS = popcount(~V) within the
  ;; candidate's bits. Carries past a lane's top bit only move upward, so they never reach counted bits.
  (func (export "scan16")
    (param $doc i32) (param $docTo i32) (param $offsets i32) (param $tokens i32) (param $lengthIds i32)
    (param $rowOf i32) (param $masks i32) (param $full i32) (param $hist i32) (param $out i32) (param $laneBytes i32)
    (param $scratch i32)
    (local $first i32) (local $k i32) (local $end i32) (local $n i32) (local $row i32) (local $mask i32)
    (local $at i32)
    (local $counts v128) (local $u v128) (local $lo v128) (local $hi v128) (local $s0 v128) (local $s1 v128)
    (local $f0 v128) (local $f1 v128) (local $f2 v128) (local $f3 v128)
    (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)
    (local.set $first (local.get $doc))
    (local.set $f0 (v128.load offset=0 (local.get $full)))
    (local.set $f1 (v128.load offset=16 (local.get $full)))
    (local.set $f2 (v128.load offset=32 (local.get $full)))
    (local.set $f3 (v128.load offset=48 (local.get $full)))
    (local.set $s0 (v128.load offset=64 (local.get $full)))
    (local.set $s1 (v128.load offset=80 (local.get $full)))
    (block $done
      (loop $documents
        (br_if $done (i32.ge_u (local.get $doc) (local.get $docTo)))
        (local.set $v0 (local.get $f0))
        (local.set $v1 (local.get $f1))
        (local.set $v2 (local.get $f2))
        (local.set $v3 (local.get $f3))
        (local.set $row (i32.add (local.get $offsets) (i32.shl (local.get $doc) (i32.const 2))))
        (local.set $k (i32.add (local.get $tokens) (i32.shl (i32.load (local.get $row)) (i32.const 2))))
        (local.set $end
          (i32.add (local.get $tokens) (i32.shl (i32.load offset=4 (local.get $row)) (i32.const 2))))
        (local.set $n (i32.load (i32.add (local.get $lengthIds) (i32.shl (local.get $doc) (i32.const 2)))))
        (if (i32.lt_u (local.get $k) (local.get $end))
          (then
            (loop $tokens
              (local.set $mask
                (i32.add (local.get $masks)
                  (i32.shl (i32.load16_u (i32.add (local.get $rowOf) (i32.shl (i32.load (local.get $k)) (i32.const 1))))
                    (i32.const 6))))
              (local.set $u (v128.and (local.get $v0) (v128.load offset=0 (local.get $mask))))
              (local.set $v0
                (v128.or (i32x4.add (local.get $v0) (local.get $u)) (i32x4.sub (local.get $v0) (local.get $u))))
              (local.set $u (v128.and (local.get $v1) (v128.load offset=16 (local.get $mask))))
              (local.set $v1
                (v128.or (i32x4.add (local.get $v1) (local.get $u)) (i32x4.sub (local.get $v1) (local.get $u))))
              (local.set $u (v128.and (local.get $v2) (v128.load offset=32 (local.get $mask))))
              (local.set $v2
                (v128.or (i32x4.add (local.get $v2) (local.get $u)) (i32x4.sub (local.get $v2) (local.get $u))))
              (local.set $u (v128.and (local.get $v3) (v128.load offset=48 (local.get $mask))))
              (local.set $v3
                (v128.or (i32x4.add (local.get $v3) (local.get $u)) (i32x4.sub (local.get $v3) (local.get $u))))
              (local.set $k (i32.add (local.get $k) (i32.const 4)))
              (br_if $tokens (i32.lt_u (local.get $k) (local.get $end))))))
        ;; popcount(full & ~V) per 32-bit lane, narrowed to one byte per lane.
        (local.set $counts
          (i8x16.narrow_i16x8_u
            (i16x8.narrow_i32x4_u
              (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f0) (local.get $v0)))))
              (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f1) (local.get $v1))))))
            (i16x8.narrow_i32x4_u
              (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f2) (local.get $v2)))))
              (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f3) (local.get $v3))))))))
        ;; The histogram row of this length keeps the highest LCS of each lane.
        (local.set $row (i32.add (local.get $hist) (i32.shl (local.get $n) (i32.const 5))))
        (v128.store (local.get $row) (i8x16.max_u (v128.load (local.get $row)) (local.get $counts)))
        ;; Score indices: row (m + 1) + lcs, row being the instruction's length id.
        (local.set $u (i16x8.splat (local.get $n)))
        (local.set $lo
          (i16x8.add (i16x8.mul (local.get $u) (local.get $s0)) (i16x8.extend_low_i8x16_u (local.get $counts))))
        (local.set $hi
          (i16x8.add (i16x8.mul (local.get $u) (local.get $s1)) (i16x8.extend_high_i8x16_u (local.get $counts))))
        ;; Score indices of 8 instructions at a time go to their lanes with one transposition.
        (local.set $at
          (i32.add (local.get $scratch)
            (i32.shl (i32.and (i32.sub (local.get $doc) (local.get $first)) (i32.const 7)) (i32.const 6))))
        (v128.store offset=0 (local.get $at) (local.get $lo))
        (v128.store offset=16 (local.get $at) (local.get $hi))
        (if (i32.eq (i32.and (i32.sub (local.get $doc) (local.get $first)) (i32.const 7)) (i32.const 7))
          (then
            (call $transpose
              (local.get $scratch)
              (i32.add (local.get $out) (i32.shl (i32.sub (local.get $doc) (i32.const 7)) (i32.const 1)))
              (local.get $laneBytes)
              (i32.const 2))))
        (local.set $doc (i32.add (local.get $doc) (i32.const 1)))
        (br $documents)))
    (local.set $n (i32.and (i32.sub (local.get $docTo) (local.get $first)) (i32.const 7)))
    (call $scatter
      (local.get $scratch)
      (i32.add (local.get $out) (i32.shl (i32.sub (local.get $docTo) (local.get $n)) (i32.const 1)))
      (local.get $laneBytes)
      (i32.const 16)
      (local.get $n)))

  ;; scan32h: as scan16 for 32 candidates of 1 to 16 tokens, one per 16-bit lane.
  (func (export "scan32h")
    (param $doc i32) (param $docTo i32) (param $offsets i32) (param $tokens i32) (param $lengthIds i32)
    (param $rowOf i32) (param $masks i32) (param $full i32) (param $hist i32) (param $out i32) (param $laneBytes i32)
    (param $scratch i32)
    (local $first i32) (local $k i32) (local $end i32) (local $n i32) (local $row i32) (local $mask i32)
    (local $at i32)
    (local $counts v128) (local $u v128) (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128)
    (local $f0 v128) (local $f1 v128) (local $f2 v128) (local $f3 v128)
    (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)
    (local.set $first (local.get $doc))
    (local.set $f0 (v128.load offset=0 (local.get $full)))
    (local.set $f1 (v128.load offset=16 (local.get $full)))
    (local.set $f2 (v128.load offset=32 (local.get $full)))
    (local.set $f3 (v128.load offset=48 (local.get $full)))
    (local.set $s0 (v128.load offset=64 (local.get $full)))
    (local.set $s1 (v128.load offset=80 (local.get $full)))
    (local.set $s2 (v128.load offset=96 (local.get $full)))
    (local.set $s3 (v128.load offset=112 (local.get $full)))
    (block $done
      (loop $documents
        (br_if $done (i32.ge_u (local.get $doc) (local.get $docTo)))
        (local.set $v0 (local.get $f0))
        (local.set $v1 (local.get $f1))
        (local.set $v2 (local.get $f2))
        (local.set $v3 (local.get $f3))
        (local.set $row (i32.add (local.get $offsets) (i32.shl (local.get $doc) (i32.const 2))))
        (local.set $k (i32.add (local.get $tokens) (i32.shl (i32.load (local.get $row)) (i32.const 2))))
        (local.set $end
          (i32.add (local.get $tokens) (i32.shl (i32.load offset=4 (local.get $row)) (i32.const 2))))
        (local.set $n (i32.load (i32.add (local.get $lengthIds) (i32.shl (local.get $doc) (i32.const 2)))))
        (if (i32.lt_u (local.get $k) (local.get $end))
          (then
            (loop $tokens
              (local.set $mask
                (i32.add (local.get $masks)
                  (i32.shl (i32.load16_u (i32.add (local.get $rowOf) (i32.shl (i32.load (local.get $k)) (i32.const 1))))
                    (i32.const 6))))
              (local.set $u (v128.and (local.get $v0) (v128.load offset=0 (local.get $mask))))
              (local.set $v0
                (v128.or (i16x8.add (local.get $v0) (local.get $u)) (i16x8.sub (local.get $v0) (local.get $u))))
              (local.set $u (v128.and (local.get $v1) (v128.load offset=16 (local.get $mask))))
              (local.set $v1
                (v128.or (i16x8.add (local.get $v1) (local.get $u)) (i16x8.sub (local.get $v1) (local.get $u))))
              (local.set $u (v128.and (local.get $v2) (v128.load offset=32 (local.get $mask))))
              (local.set $v2
                (v128.or (i16x8.add (local.get $v2) (local.get $u)) (i16x8.sub (local.get $v2) (local.get $u))))
              (local.set $u (v128.and (local.get $v3) (v128.load offset=48 (local.get $mask))))
              (local.set $v3
                (v128.or (i16x8.add (local.get $v3) (local.get $u)) (i16x8.sub (local.get $v3) (local.get $u))))
              (local.set $k (i32.add (local.get $k) (i32.const 4)))
              (br_if $tokens (i32.lt_u (local.get $k) (local.get $end))))))
        ;; popcount(full & ~V) per 16-bit lane.
        (local.set $c0
          (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f0) (local.get $v0)))))
        (local.set $c1
          (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f1) (local.get $v1)))))
        (local.set $c2
          (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f2) (local.get $v2)))))
        (local.set $c3
          (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f3) (local.get $v3)))))
        ;; The histogram row of this length keeps the highest LCS of each lane (32 bytes).
        (local.set $row (i32.add (local.get $hist) (i32.shl (local.get $n) (i32.const 5))))
        (v128.store (local.get $row)
          (i8x16.max_u (v128.load (local.get $row)) (i8x16.narrow_i16x8_u (local.get $c0) (local.get $c1))))
        (v128.store offset=16 (local.get $row)
          (i8x16.max_u (v128.load offset=16 (local.get $row)) (i8x16.narrow_i16x8_u (local.get $c2) (local.get $c3))))
        ;; Score indices: row (m + 1) + lcs, row being the instruction's length id.
        (local.set $u (i16x8.splat (local.get $n)))
        (local.set $c0 (i16x8.add (i16x8.mul (local.get $u) (local.get $s0)) (local.get $c0)))
        (local.set $c1 (i16x8.add (i16x8.mul (local.get $u) (local.get $s1)) (local.get $c1)))
        (local.set $c2 (i16x8.add (i16x8.mul (local.get $u) (local.get $s2)) (local.get $c2)))
        (local.set $c3 (i16x8.add (i16x8.mul (local.get $u) (local.get $s3)) (local.get $c3)))
        ;; Score indices of 8 instructions at a time go to their lanes with one transposition.
        (local.set $at
          (i32.add (local.get $scratch)
            (i32.shl (i32.and (i32.sub (local.get $doc) (local.get $first)) (i32.const 7)) (i32.const 6))))
        (v128.store offset=0 (local.get $at) (local.get $c0))
        (v128.store offset=16 (local.get $at) (local.get $c1))
        (v128.store offset=32 (local.get $at) (local.get $c2))
        (v128.store offset=48 (local.get $at) (local.get $c3))
        (if (i32.eq (i32.and (i32.sub (local.get $doc) (local.get $first)) (i32.const 7)) (i32.const 7))
          (then
            (call $transpose
              (local.get $scratch)
              (i32.add (local.get $out) (i32.shl (i32.sub (local.get $doc) (i32.const 7)) (i32.const 1)))
              (local.get $laneBytes)
              (i32.const 4))))
        (local.set $doc (i32.add (local.get $doc) (i32.const 1)))
        (br $documents)))
    (local.set $n (i32.and (i32.sub (local.get $docTo) (local.get $first)) (i32.const 7)))
    (call $scatter
      (local.get $scratch)
      (i32.add (local.get $out) (i32.shl (i32.sub (local.get $docTo) (local.get $n)) (i32.const 1)))
      (local.get $laneBytes)
      (i32.const 32)
      (local.get $n)))


  ;; scan8w: as scan16 for 8 candidates of 1 to 64 tokens, one per 64-bit lane.
  (func (export "scan8w")
    (param $doc i32) (param $docTo i32) (param $offsets i32) (param $tokens i32) (param $lengthIds i32)
    (param $rowOf i32) (param $masks i32) (param $full i32) (param $hist i32) (param $out i32) (param $laneBytes i32)
    (param $scratch i32)
    (local $first i32) (local $k i32) (local $end i32) (local $n i32) (local $row i32) (local $mask i32)
    (local $at i32)
    (local $counts v128) (local $u v128) (local $lo v128) (local $s0 v128)
    (local $f0 v128) (local $f1 v128) (local $f2 v128) (local $f3 v128)
    (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)
    (local.set $first (local.get $doc))
    (local.set $f0 (v128.load offset=0 (local.get $full)))
    (local.set $f1 (v128.load offset=16 (local.get $full)))
    (local.set $f2 (v128.load offset=32 (local.get $full)))
    (local.set $f3 (v128.load offset=48 (local.get $full)))
    (local.set $s0 (v128.load offset=64 (local.get $full)))
    (block $done
      (loop $documents
        (br_if $done (i32.ge_u (local.get $doc) (local.get $docTo)))
        (local.set $v0 (local.get $f0))
        (local.set $v1 (local.get $f1))
        (local.set $v2 (local.get $f2))
        (local.set $v3 (local.get $f3))
        (local.set $row (i32.add (local.get $offsets) (i32.shl (local.get $doc) (i32.const 2))))
        (local.set $k (i32.add (local.get $tokens) (i32.shl (i32.load (local.get $row)) (i32.const 2))))
        (local.set $end
          (i32.add (local.get $tokens) (i32.shl (i32.load offset=4 (local.get $row)) (i32.const 2))))
        (local.set $n (i32.load (i32.add (local.get $lengthIds) (i32.shl (local.get $doc) (i32.const 2)))))
        (if (i32.lt_u (local.get $k) (local.get $end))
          (then
            (loop $tokens
              (local.set $mask
                (i32.add (local.get $masks)
                  (i32.shl (i32.load16_u (i32.add (local.get $rowOf) (i32.shl (i32.load (local.get $k)) (i32.const 1))))
                    (i32.const 6))))
              (local.set $u (v128.and (local.get $v0) (v128.load offset=0 (local.get $mask))))
              (local.set $v0
                (v128.or (i64x2.add (local.get $v0) (local.get $u)) (i64x2.sub (local.get $v0) (local.get $u))))
              (local.set $u (v128.and (local.get $v1) (v128.load offset=16 (local.get $mask))))
              (local.set $v1
                (v128.or (i64x2.add (local.get $v1) (local.get $u)) (i64x2.sub (local.get $v1) (local.get $u))))
              (local.set $u (v128.and (local.get $v2) (v128.load offset=32 (local.get $mask))))
              (local.set $v2
                (v128.or (i64x2.add (local.get $v2) (local.get $u)) (i64x2.sub (local.get $v2) (local.get $u))))
              (local.set $u (v128.and (local.get $v3) (v128.load offset=48 (local.get $mask))))
              (local.set $v3
                (v128.or (i64x2.add (local.get $v3) (local.get $u)) (i64x2.sub (local.get $v3) (local.get $u))))
              (local.set $k (i32.add (local.get $k) (i32.const 4)))
              (br_if $tokens (i32.lt_u (local.get $k) (local.get $end))))))
        ;; Counts of both 32-bit halves as bytes, then each lane's two bytes added into one.
        (local.set $counts
          (i8x16.narrow_i16x8_u
            (i16x8.extadd_pairwise_i8x16_u
              (i8x16.narrow_i16x8_u
                (i16x8.narrow_i32x4_u
                  (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f0) (local.get $v0)))))
                  (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f1) (local.get $v1))))))
                (i16x8.narrow_i32x4_u
                  (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f2) (local.get $v2)))))
                  (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (i8x16.popcnt (v128.andnot (local.get $f3) (local.get $v3))))))))
            (v128.const i64x2 0 0)))
        ;; The histogram row of this length keeps the highest LCS of each lane.
        (local.set $row (i32.add (local.get $hist) (i32.shl (local.get $n) (i32.const 5))))
        (v128.store (local.get $row) (i8x16.max_u (v128.load (local.get $row)) (local.get $counts)))
        ;; Score indices: row (m + 1) + lcs, row being the instruction's length id.
        (local.set $lo
          (i16x8.add
            (i16x8.mul (i16x8.splat (local.get $n)) (local.get $s0))
            (i16x8.extend_low_i8x16_u (local.get $counts))))
        ;; Score indices of 8 instructions at a time go to their lanes with one transposition.
        (local.set $at
          (i32.add (local.get $scratch)
            (i32.shl (i32.and (i32.sub (local.get $doc) (local.get $first)) (i32.const 7)) (i32.const 6))))
        (v128.store offset=0 (local.get $at) (local.get $lo))
        (if (i32.eq (i32.and (i32.sub (local.get $doc) (local.get $first)) (i32.const 7)) (i32.const 7))
          (then
            (call $transpose
              (local.get $scratch)
              (i32.add (local.get $out) (i32.shl (i32.sub (local.get $doc) (i32.const 7)) (i32.const 1)))
              (local.get $laneBytes)
              (i32.const 1))))
        (local.set $doc (i32.add (local.get $doc) (i32.const 1)))
        (br $documents)))
    (local.set $n (i32.and (i32.sub (local.get $docTo) (local.get $first)) (i32.const 7)))
    (call $scatter
      (local.get $scratch)
      (i32.add (local.get $out) (i32.shl (i32.sub (local.get $docTo) (local.get $n)) (i32.const 1)))
      (local.get $laneBytes)
      (i32.const 8)
      (local.get $n)))

  ;; transpose(scratch, out, laneBytes, blocks): moves the score indices of 8 instructions from
  ;; `scratch` (instruction i's at scratch + 64 i, 8 lanes of int16 per 16-byte block) to their lanes
  ;; (lane c's 8 indices at out + c laneBytes): per block, an 8 x 8 transposition of int16 in three rounds
  ;; of interleaving (16, 32, then 64 bits).
  (func $transpose (param $scratch i32) (param $out i32) (param $laneBytes i32) (param $blocks i32)
    (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128)
    (local $r4 v128) (local $r5 v128) (local $r6 v128) (local $r7 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local $t4 v128) (local $t5 v128) (local $t6 v128) (local $t7 v128)
    (block $done
      (loop $block
        (br_if $done (i32.eqz (local.get $blocks)))
        (local.set $r0 (v128.load offset=0 (local.get $scratch)))
        (local.set $r1 (v128.load offset=64 (local.get $scratch)))
        (local.set $r2 (v128.load offset=128 (local.get $scratch)))
        (local.set $r3 (v128.load offset=192 (local.get $scratch)))
        (local.set $r4 (v128.load offset=256 (local.get $scratch)))
        (local.set $r5 (v128.load offset=320 (local.get $scratch)))
        (local.set $r6 (v128.load offset=384 (local.get $scratch)))
        (local.set $r7 (v128.load offset=448 (local.get $scratch)))
        (local.set $t0 (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $r0) (local.get $r1)))
        (local.set $t1 (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $r0) (local.get $r1)))
        (local.set $t2 (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $r2) (local.get $r3)))
        (local.set $t3 (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $r2) (local.get $r3)))
        (local.set $t4 (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $r4) (local.get $r5)))
        (local.set $t5 (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $r4) (local.get $r5)))
        (local.set $t6 (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $r6) (local.get $r7)))
        (local.set $t7 (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $r6) (local.get $r7)))
        (local.set $r0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $t0) (local.get $t2)))
        (local.set $r1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $t0) (local.get $t2)))
        (local.set $r2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $t1) (local.get $t3)))
        (local.set $r3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $t1) (local.get $t3)))
        (local.set $r4 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $t4) (local.get $t6)))
        (local.set $r5 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $t4) (local.get $t6)))
        (local.set $r6 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $t5) (local.get $t7)))
        (local.set $r7 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $t5) (local.get $t7)))
        (v128.store (local.get $out) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $r0) (local.get $r4)))
        (local.set $out (i32.add (local.get $out) (local.get $laneBytes)))
        (v128.store (local.get $out) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $r0) (local.get $r4)))
        (local.set $out (i32.add (local.get $out) (local.get $laneBytes)))
        (v128.store (local.get $out) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $r1) (local.get $r5)))
        (local.set $out (i32.add (local.get $out) (local.get $laneBytes)))
        (v128.store (local.get $out) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $r1) (local.get $r5)))
        (local.set $out (i32.add (local.get $out) (local.get $laneBytes)))
        (v128.store (local.get $out) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $r2) (local.get $r6)))
        (local.set $out (i32.add (local.get $out) (local.get $laneBytes)))
        (v128.store (local.get $out) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $r2) (local.get $r6)))
        (local.set $out (i32.add (local.get $out) (local.get $laneBytes)))
        (v128.store (local.get $out) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $r3) (local.get $r7)))
        (local.set $out (i32.add (local.get $out) (local.get $laneBytes)))
        (v128.store (local.get $out) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $r3) (local.get $r7)))
        (local.set $out (i32.add (local.get $out) (local.get $laneBytes)))
        (local.set $scratch (i32.add (local.get $scratch) (i32.const 16)))
        (local.set $blocks (i32.sub (local.get $blocks) (i32.const 1)))
        (br $block))))

  ;; scatter(scratch, out, laneBytes, lanes, count): as transpose, for the last `count` (< 8) instructions
  ;; of a scan, one index at a time.
  (func $scatter
    (param $scratch i32) (param $out i32) (param $laneBytes i32) (param $lanes i32) (param $count i32)
    (local $i i32)
    (block $done
      (loop $lanes
        (br_if $done (i32.eqz (local.get $lanes)))
        (local.set $i (i32.const 0))
        (block $next
          (loop $indices
            (br_if $next (i32.ge_u (local.get $i) (local.get $count)))
            (i32.store16
              (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 1)))
              (i32.load16_u (i32.add (local.get $scratch) (i32.shl (local.get $i) (i32.const 6)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $indices)))
        (local.set $out (i32.add (local.get $out) (local.get $laneBytes)))
        (local.set $scratch (i32.add (local.get $scratch) (i32.const 2)))
        (local.set $lanes (i32.sub (local.get $lanes) (i32.const 1)))
        (br $lanes))))

  ;; score(indices, docFrom, docTo, table, scores, top, k) -> entries in the top k: for each instruction
  ;; d of [docFrom, docTo), the candidate's ROUGE-L F-measure, the double table[index] for its score
  ;; index (int16 at indices + 2 d, see scan16), stored at scores + 8 (d - docFrom); and the k highest
  ;; (see `offer`), starting afresh. Scores are compared with the lowest kept four at a time, so that only
  ;; the few that may enter go through `offer`.
  (func (export "score")
    (param $indices i32) (param $doc i32) (param $docTo i32) (param $table i32) (param $scores i32)
    (param $top i32) (param $k i32) (result i32)
    (local $s0 f64) (local $s1 f64) (local $s2 f64) (local $s3 f64) (local $floor f64)
    (i32.store (i32.add (local.get $top) (i32.mul (local.get $k) (i32.const 12))) (i32.const 0))
    (local.set $floor (select (f64.const -inf) (f64.const inf) (local.get $k)))
    (local.set $indices (i32.add (local.get $indices) (i32.shl (local.get $doc) (i32.const 1))))
    (block $done
      (loop $four
        (br_if $done (i32.gt_u (i32.add (local.get $doc) (i32.const 4)) (local.get $docTo)))
        (local.set $s0
          (f64.load (i32.add (local.get $table) (i32.shl (i32.load16_u offset=0 (local.get $indices)) (i32.const 3)))))
        (local.set $s1
          (f64.load (i32.add (local.get $table) (i32.shl (i32.load16_u offset=2 (local.get $indices)) (i32.const 3)))))
        (local.set $s2
          (f64.load (i32.add (local.get $table) (i32.shl (i32.load16_u offset=4 (local.get $indices)) (i32.const 3)))))
        (local.set $s3
          (f64.load (i32.add (local.get $table) (i32.shl (i32.load16_u offset=6 (local.get $indices)) (i32.const 3)))))
        (f64.store offset=0 (local.get $scores) (local.get $s0))
        (f64.store offset=8 (local.get $scores) (local.get $s1))
        (f64.store offset=16 (local.get $scores) (local.get $s2))
        (f64.store offset=24 (local.get $scores) (local.get $s3))
        (if (i32.or
              (i32.or (f64.gt (local.get $s0) (local.get $floor)) (f64.gt (local.get $s1) (local.get $floor)))
              (i32.or (f64.gt (local.get $s2) (local.get $floor)) (f64.gt (local.get $s3) (local.get $floor))))
          (then
            (local.set $floor (call $offer (local.get $top) (local.get $k) (local.get $s0) (local.get $doc)))
            (local.set $floor
              (call $offer (local.get $top) (local.get $k) (local.get $s1) (i32.add (local.get $doc) (i32.const 1))))
            (local.set $floor
              (call $offer (local.get $top) (local.get $k) (local.get $s2) (i32.add (local.get $doc) (i32.const 2))))
            (local.set $floor
              (call $offer (local.get $top) (local.get $k) (local.get $s3) (i32.add (local.get $doc) (i32.const 3))))))
        (local.set $indices (i32.add (local.get $indices) (i32.const 8)))
        (local.set $scores (i32.add (local.get $scores) (i32.const 32)))
        (local.set $doc (i32.add (local.get $doc) (i32.const 4)))
        (br $four)))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $doc) (local.get $docTo)))
        (local.set $s0
          (f64.load (i32.add (local.get $table) (i32.shl (i32.load16_u (local.get $indices)) (i32.const 3)))))
        (f64.store (local.get $scores) (local.get $s0))
        (if (f64.gt (local.get $s0) (local.get $floor))
          (then (local.set $floor (call $offer (local.get $top) (local.get $k) (local.get $s0) (local.get $doc)))))
        (local.set $indices (i32.add (local.get $indices) (i32.const 2)))
        (local.set $scores (i32.add (local.get $scores) (i32.const 8)))
        (local.set $doc (i32.add (local.get $doc) (i32.const 1)))
        (br $one)))
    (i32.load (i32.add (local.get $top) (i32.mul (local.get $k) (i32.const 12)))))

  ;; offer(top, k, score, position) -> the lowest score kept, once k are (-inf before): keeps the k highest
  ;; scores offered, descending, equal scores in the order offered, as k doubles at `top`, their positions
  ;; as k int32 after them, and how many are kept as an int32 after those.
  (func $offer (param $top i32) (param $k i32) (param $score f64) (param $position i32) (result f64)
    (local $positions i32) (local $filled i32) (local $at i32)
    (local.set $positions (i32.add (local.get $top) (i32.shl (local.get $k) (i32.const 3))))
    (local.set $filled (i32.load (i32.add (local.get $positions) (i32.shl (local.get $k) (i32.const 2)))))
    (if (i32.and
          (i32.eq (local.get $filled) (local.get $k))
          (i32.eqz
            (f64.gt (local.get $score)
              (f64.load (i32.add (local.get $top) (i32.shl (i32.sub (local.get $k) (i32.const 1)) (i32.const 3)))))))
      (then
        (return
          (f64.load (i32.add (local.get $top) (i32.shl (i32.sub (local.get $k) (i32.const 1)) (i32.const 3)))))))
    ;; Insert, dropping the lowest when full; an equal score stays behind the earlier one.
    (local.set $at (local.get $filled))
    (if (i32.lt_u (local.get $filled) (local.get $k))
      (then
        (local.set $filled (i32.add (local.get $filled) (i32.const 1)))
        (i32.store (i32.add (local.get $positions) (i32.shl (local.get $k) (i32.const 2))) (local.get $filled)))
      (else (local.set $at (i32.sub (local.get $k) (i32.const 1)))))
    (block $placed
      (loop $shift
        (br_if $placed (i32.eqz (local.get $at)))
        (br_if $placed
          (i32.eqz
            (f64.lt
              (f64.load (i32.add (local.get $top) (i32.shl (i32.sub (local.get $at) (i32.const 1)) (i32.const 3))))
              (local.get $score))))
        (f64.store (i32.add (local.get $top) (i32.shl (local.get $at) (i32.const 3)))
          (f64.load (i32.add (local.get $top) (i32.shl (i32.sub (local.get $at) (i32.const 1)) (i32.const 3)))))
        (i32.store (i32.add (local.get $positions) (i32.shl (local.get $at) (i32.const 2)))
          (i32.load (i32.add (local.get $positions) (i32.shl (i32.sub (local.get $at) (i32.const 1)) (i32.const 2)))))
        (local.set $at (i32.sub (local.get $at) (i32.const 1)))
        (br $shift)))
    (f64.store (i32.add (local.get $top) (i32.shl (local.get $at) (i32.const 3))) (local.get $score))
    (i32.store (i32.add (local.get $positions) (i32.shl (local.get $at) (i32.const 2))) (local.get $position))
    (if (result f64) (i32.eq (local.get $filled) (local.get $k))
      (then (f64.load (i32.add (local.get $top) (i32.shl (i32.sub (local.get $k) (i32.const 1)) (i32.const 3)))))
      (else (f64.const -inf))))

  ;; more(scores, count, first, top, k) -> entries: offers (see `offer`) `count` more doubles at `scores`,
  ;; at positions `first` on, to the k highest kept so far.
  (func (export "more")
    (param $scores i32) (param $count i32) (param $first i32) (param $top i32) (param $k i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (drop
          (call $offer (local.get $top) (local.get $k)
            (f64.load (i32.add (local.get $scores) (i32.shl (local.get $i) (i32.const 3))))
            (i32.add (local.get $first) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.load (i32.add (local.get $top) (i32.mul (local.get $k) (i32.const 12)))))

  ;; pairwise(values, n): the sum of n doubles in NumPy's pairwise order (`pairwise_sum`, see mean.ts):
  ;; fewer than 8 summed in order from -0; up to 128 with 8 interleaved accumulators (here 4 f64x2
  ;; vectors, lane j of vector i being accumulator 2 i + j), combined as ((r0 + r1) + (r2 + r3)) +
  ;; ((r4 + r5) + (r6 + r7)), then the remainder in order; above 128, split at half rounded down to a
  ;; multiple of 8.
  (func $pairwise (export "pairwise") (param $values i32) (param $n i32) (result f64)
    (local $end i32) (local $sum f64) (local $half i32)
    (local $r01 v128) (local $r23 v128) (local $r45 v128) (local $r67 v128)
    (local.set $end (i32.add (local.get $values) (i32.shl (local.get $n) (i32.const 3))))
    (if (i32.lt_u (local.get $n) (i32.const 8))
      (then
        (local.set $sum (f64.const -0))
        (block $done
          (loop $add
            (br_if $done (i32.ge_u (local.get $values) (local.get $end)))
            (local.set $sum (f64.add (local.get $sum) (f64.load (local.get $values))))
            (local.set $values (i32.add (local.get $values) (i32.const 8)))
            (br $add)))
        (return (local.get $sum))))
    (if (i32.le_u (local.get $n) (i32.const 128))
      (then
        (local.set $r01 (v128.load offset=0 (local.get $values)))
        (local.set $r23 (v128.load offset=16 (local.get $values)))
        (local.set $r45 (v128.load offset=32 (local.get $values)))
        (local.set $r67 (v128.load offset=48 (local.get $values)))
        (local.set $half
          (i32.add (local.get $values) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 3))))
        (local.set $values (i32.add (local.get $values) (i32.const 64)))
        (block $done
          (loop $add
            (br_if $done (i32.ge_u (local.get $values) (local.get $half)))
            (local.set $r01 (f64x2.add (local.get $r01) (v128.load offset=0 (local.get $values))))
            (local.set $r23 (f64x2.add (local.get $r23) (v128.load offset=16 (local.get $values))))
            (local.set $r45 (f64x2.add (local.get $r45) (v128.load offset=32 (local.get $values))))
            (local.set $r67 (f64x2.add (local.get $r67) (v128.load offset=48 (local.get $values))))
            (local.set $values (i32.add (local.get $values) (i32.const 64)))
            (br $add)))
        (local.set $sum
          (f64.add
            (f64.add
              (f64.add (f64x2.extract_lane 0 (local.get $r01)) (f64x2.extract_lane 1 (local.get $r01)))
              (f64.add (f64x2.extract_lane 0 (local.get $r23)) (f64x2.extract_lane 1 (local.get $r23))))
            (f64.add
              (f64.add (f64x2.extract_lane 0 (local.get $r45)) (f64x2.extract_lane 1 (local.get $r45)))
              (f64.add (f64x2.extract_lane 0 (local.get $r67)) (f64x2.extract_lane 1 (local.get $r67))))))
        (block $done
          (loop $add
            (br_if $done (i32.ge_u (local.get $values) (local.get $end)))
            (local.set $sum (f64.add (local.get $sum) (f64.load (local.get $values))))
            (local.set $values (i32.add (local.get $values) (i32.const 8)))
            (br $add)))
        (return (local.get $sum))))
    (local.set $half (i32.and (i32.shr_u (local.get $n) (i32.const 1)) (i32.const -8)))
    (f64.add
      (call $pairwise (local.get $values) (local.get $half))
      (call $pairwise
        (i32.add (local.get $values) (i32.shl (local.get $half) (i32.const 3)))
        (i32.sub (local.get $n) (local.get $half))))))
