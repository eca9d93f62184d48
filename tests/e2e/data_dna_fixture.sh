#!/usr/bin/env bash
# tests/e2e/data_dna_fixture.sh — scripts/data_dna.lua (the preparation step of scripts/data) on a
# small fixture laid out as the unpacked Debian packages are, with windows of 8 bp: the dm3 split by
# chromosome (N and duplicates dropped, the last 8 bases kept), the strand-aware human windows, the
# motif file and the counts, all checked against values worked out by hand. No download.
#   usage: data_dna_fixture.sh [SOURCE_DIR] [BUILD_DIR]
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
build=$(cd "${2:-$src/build}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
r="$tmp/root"
mkdir -p "$r/usr/lib/R/site-library/Biostrings/extdata" "$r/usr/share/doc/vt/examples/ref" \
  "$r/usr/share/doc/smalt/test/data" "$r/usr/share/doc/chromhmm/examples/ANCHORFILES/hg19" \
  "$r/usr/lib/R/site-library/PWMEnrich/extdata" "$tmp/out"
# dm3: a (2L, train), b (X, test), c (4, validation), d (duplicate of a's last 8), e (N in the window),
# f (N only before the window: kept, train), g (shorter than 8)
cat > "$tmp/dm3.fa" <<'F'
>a_up_2000_chr2L_1_f chr2L:1-12
ggggACGTACGA
>b_up_2000_chrX_1_r chrX:1-12
TTTTCCCCAAAA
>c_up_2000_chr4_1_f chr4:1-10
GGACGTTTGC
>d_up_2000_chr3R_1_f chr3R:1-10
TTACGTACGA
>e_up_2000_chr3R_2_f chr3R:1-10
ACGTNCGTAA
>f_up_2000_chr2R_1_f chr2R:1-12
NNNNGGGGCCCC
>g_up_2000_chr2R_2_f chr2R:1-5
ACGTA
F
gzip -c "$tmp/dm3.fa" > "$r/usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz"
#                                  0         1         2
#                                  0123456789012345678901234
printf '>20\nNNAACCGGTTAACCGGATGCATGCAA\n' | gzip -c > "$r/usr/share/doc/vt/examples/ref/20.fa.gz"
printf '>X  gi|1|ref|NC_000023.10|\nAAAATTTTCCCCGGGG\n' | gzip -c > "$r/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz"
# chr20:8 + -> [4, 12) CCGGTTAA; chr20:8 - -> revcomp(CCGGTTAA) = TTAACCGG; chr20:3 -> [-1, 7) outside;
# chr20:5 + -> [1, 9) has N; chrX:8 - -> revcomp([4, 12) TTTTCCCC) = GGGGAAAA; chr1 ignored
printf 'chr20\t8\t+\nchr20\t8\t-\nchr20\t3\t+\nchr20\t5\t+\nchrX\t8\t-\nchr1\t100\t+\n' | gzip -c \
  > "$r/usr/share/doc/chromhmm/examples/ANCHORFILES/hg19/RefSeqTSS.hg19.txt.gz"
printf '>MA0205.1 Trl\nA  [1 0 ]\nC  [0 0 ]\nG  [0 1 ]\nT  [0 0 ]\n' > "$r/usr/lib/R/site-library/PWMEnrich/extdata/jaspar-insecta.jaspar"
printf '>MA0108.2 TBP\n1\t0\n0\t0\n0\t0\n0\t1\n' > "$r/usr/lib/R/site-library/PWMEnrich/extdata/pfm_vertebrates.txt"

"$build/fisherflow" run "$src/scripts/data_dna.lua" --root "$r" --out "$tmp/out" --length 8 > "$tmp/run.log" 2>&1 \
  || { cat "$tmp/run.log"; echo "FAIL: data_dna.lua exited non-zero"; exit 1; }
cat "$tmp/run.log"
seqs() { grep -v '^>' "$1" | tr '\n' ' '; }
expect() { [ "$2" = "$3" ] || { echo "FAIL: $1: expected '$3', got '$2'"; exit 1; }; }
expect "train" "$(seqs "$tmp/out/dm3_train.fa")" "ACGTACGA GGGGCCCC "
expect "train names" "$(grep '^>' "$tmp/out/dm3_train.fa" | tr '\n' ' ')" ">a_up_2000_chr2L_1_f chr2L >f_up_2000_chr2R_1_f chr2R "
expect "validation" "$(seqs "$tmp/out/dm3_valid.fa")" "ACGTTTGC "
expect "test" "$(seqs "$tmp/out/dm3_test.fa")" "CCCCAAAA "
expect "human" "$(seqs "$tmp/out/human.fa")" "CCGGTTAA TTAACCGG GGGGAAAA "
expect "human names" "$(grep '^>' "$tmp/out/human.fa" | tr '\n' ' ')" ">chr20:8:+ >chr20:8:- >chrX:8:- "
grep -q "7 records, 1 shorter than 8, 1 with N, 1 duplicates -> train 2, validation 1 (chr4), test 1 (chrX)" "$tmp/run.log" \
  || { echo "FAIL: dm3 counts"; exit 1; }
grep -q "5 RefSeq TSSs on them, 1 windows past an end, 1 with N, 0 duplicates -> 3 windows" "$tmp/run.log" \
  || { echo "FAIL: human counts"; exit 1; }
expect "motif ids" "$(grep '^>' "$tmp/out/motifs.jaspar" | cut -d' ' -f1 | tr '\n' ' ')" ">TATA >Inr >GAGA "
expect "TATA row T" "$(grep -m1 '^T' "$tmp/out/motifs.jaspar")" "T [ 0 1 ]"
"$build/fisherflow" run "$src/scripts/data_dna.lua" --root "$tmp/nowhere" --out "$tmp/out" > "$tmp/err.log" 2>&1 \
  && { echo "FAIL: a missing package tree was accepted"; exit 1; }
grep -q "nowhere/usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz" "$tmp/err.log" \
  || { cat "$tmp/err.log"; echo "FAIL: the error does not name the missing file"; exit 1; }
echo "PASS: data_dna_fixture"
