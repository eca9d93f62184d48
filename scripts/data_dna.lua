-- scripts/data_dna.lua — the preparation step of scripts/data (run it through that script, which
-- fetches and checks the inputs): writes into --out
--   dm3_train.fa dm3_valid.fa dm3_test.fa  D. melanogaster promoters: the TSS-proximal --length bp of
--                                          each dm3 upstream-2000 record, upper-case, records with N
--                                          dropped, duplicates dropped (first kept); test = chrX (and
--                                          chrXHet), validation = chr4, train = every other arm
--   human.fa                               human windows of --length bp centred on RefSeq TSSs of
--                                          GRCh37 chr20 and chrX (0-70 Mb), reverse-complemented on
--                                          the minus strand; N and duplicates dropped
--   motifs.jaspar                          the motifs the metrics scan for (see MOTIFS below)
--   counts.json                            every count printed
local ff = require "fisherflow"
local dna = ff.dna
local arg = ff.args {
  root   = { "", "the folder the packages were unpacked into (dpkg -x)" },
  out    = { "", "output folder" },
  length = { 1024, "window length" },
}
if arg.root == "" or arg.out == "" then error("--root and --out are required (scripts/data passes them)", 0) end
local R = arg.root .. "/"
local L = arg.length

local dm3 = dna.dm3_promoters(dna.read_fasta(R .. "usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz"), { L = L })
for _, split in ipairs { "train", "valid", "test" } do
  dna.write_fasta(arg.out .. "/dm3_" .. split .. ".fa", dm3[split].names, dm3[split].seqs)
end
local c = dm3.counts
print(("dm3 upstream2000: %d records, %d shorter than %d, %d with N, %d duplicates -> train %d, validation %d (chr4), test %d (chrX)")
      :format(c.records, c.short, L, c.with_n, c.duplicates, c.train, c.valid, c.test))

local genome = {}
for chr, file in pairs { chr20 = "usr/share/doc/vt/examples/ref/20.fa.gz", chrX = "usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz" } do
  local recs = dna.read_fasta(R .. file)
  if #recs ~= 1 then error(("%s: expected one record, got %d"):format(file, #recs), 0) end
  genome[chr] = recs[1].seq
end
local tss = dna.parse_tss(R .. "usr/share/doc/chromhmm/examples/ANCHORFILES/hg19/RefSeqTSS.hg19.txt.gz")
local hum = dna.human_windows(genome, tss, { L = L })
dna.write_fasta(arg.out .. "/human.fa", hum.names, hum.seqs)
local h = hum.counts
print(("human (chr20 %d bp, chrX %d bp): %d RefSeq TSSs on them, %d windows past an end, %d with N, %d duplicates -> %d windows")
      :format(#genome.chr20, #genome.chrX, h.tss, h.outside, h.with_n, h.duplicates, h.kept))

-- MOTIFS: the TATA box as JASPAR's TBP matrix (MA0108.2, the only TATA matrix in either file), the
-- GAGA element as Trl (insect file), and the initiator, which neither file holds, from the
-- Drosophila Inr consensus TCAGTY (20 counts per position split over the letters allowed).
local function pick(list, name)
  for _, m in ipairs(list) do if m.name == name then return m end end
  error("no motif named " .. name, 0)
end
local vert = dna.read_jaspar(R .. "usr/lib/R/site-library/PWMEnrich/extdata/pfm_vertebrates.txt")
local insect = dna.read_jaspar(R .. "usr/lib/R/site-library/PWMEnrich/extdata/jaspar-insecta.jaspar")
local motifs = {
  { id = "TATA", src = pick(vert, "TBP") },
  { id = "Inr", src = { id = "consensus", name = "TCAGTY", counts = dna.consensus_counts("TCAGTY", 20) } },
  { id = "GAGA", src = pick(insect, "Trl") },
}
local out = {}
for _, m in ipairs(motifs) do
  out[#out + 1] = (">%s %s %s"):format(m.id, m.src.id, m.src.name)
  for _, b in ipairs { "A", "C", "G", "T" } do
    local row = {}
    for i, v in ipairs(m.src.counts[b]) do row[i] = ("%g"):format(v) end
    out[#out + 1] = b .. " [ " .. table.concat(row, " ") .. " ]"
  end
end
ff.util.write_atomic(arg.out .. "/motifs.jaspar", table.concat(out, "\n") .. "\n")
print("motifs: TATA (JASPAR MA0108.2 TBP), Inr (consensus TCAGTY), GAGA (JASPAR " .. pick(insect, "Trl").id .. " Trl)")
ff.results(arg.out .. "/counts.json", { length = L, dm3 = dm3.counts, human = hum.counts })
