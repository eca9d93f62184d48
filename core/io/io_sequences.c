/* io_sequences.c — FASTA and one-sequence-per-line files -> one-hot [n, L, |alphabet|] (io.h).
 * One pass over the bytes; every refusal names file:line[:column] (columns count characters). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/io.h"
#include "io_internal.h"

ff_seq_opts ff_seq_default_opts(const char *alphabet) {
    return (ff_seq_opts){ .alphabet = alphabet, .format = FF_SEQ_AUTO, .case_policy = FF_SEQ_CASE_FOLD, .length = 0 };
}

static int upper(int c) { return (c >= 'a' && c <= 'z') ? c - 32 : c; }
static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Symbol -> index table (-1 = unknown). */
static ff_status build_table(const ff_seq_opts *o, int table[256], int *nsym) {
    for (int i = 0; i < 256; i++) table[i] = -1;
    if (!o || !o->alphabet) return ff_errorf(FF_EINVAL, "ff_seq_parse: alphabet is NULL (e.g. \"ACGT\")");
    const unsigned char *a = (const unsigned char *)o->alphabet;
    int n = (int)strlen(o->alphabet);
    if (n == 0) return ff_errorf(FF_EINVAL, "ff_seq_parse: alphabet is empty (e.g. \"ACGT\")");
    if (o->case_policy != FF_SEQ_CASE_FOLD && o->case_policy != FF_SEQ_CASE_EXACT)
        return ff_errorf(FF_EINVAL, "ff_seq_parse: case_policy %d is neither FOLD nor EXACT", (int)o->case_policy);
    if (o->format != FF_SEQ_AUTO && o->format != FF_SEQ_FASTA && o->format != FF_SEQ_LINES)
        return ff_errorf(FF_EINVAL, "ff_seq_parse: format %d is not AUTO, FASTA or LINES", (int)o->format);
    if (o->length < 0) return ff_errorf(FF_EINVAL, "ff_seq_parse: length %lld < 0", (long long)o->length);
    for (int i = 0; i < n; i++) {
        int c = a[i];
        if (c <= 0x20 || c >= 0x7f)
            return ff_errorf(FF_EINVAL, "ff_seq_parse: alphabet \"%s\": symbol %d (byte 0x%02x) is not printable ASCII",
                             o->alphabet, i + 1, c);
        if (table[c] >= 0) {
            if (a[table[c]] == c)
                return ff_errorf(FF_EINVAL, "ff_seq_parse: alphabet \"%s\": symbol '%c' repeated", o->alphabet, c);
            return ff_errorf(FF_EINVAL, "ff_seq_parse: alphabet \"%s\": symbols '%c' and '%c' differ only in case "
                             "(use case_policy EXACT)", o->alphabet, a[table[c]], c);
        }
        if (o->case_policy == FF_SEQ_CASE_FOLD) table[upper(c)] = table[lower(c)] = i;
        table[c] = i;
    }
    *nsym = n;
    return FF_OK;
}

typedef struct {
    const char    *label;
    const ff_seq_opts *o;
    int            table[256];
    int            nsym;
    unsigned char *sym;       /* symbol indices of every sequence, concatenated */
    int64_t        nsym_total, nseq, L, L_line;
    int64_t        rec_start, rec_line;   /* FASTA: current record's first symbol and header line */
    char           rec_name[64];
} parser;

/* Appends the symbols of one line [s, e) (line number ln). */
static ff_status scan_symbols(parser *p, const unsigned char *s, const unsigned char *e, int64_t ln) {
    int64_t col = 1;
    for (const unsigned char *q = s; q < e; col++) {
        if (*q < 0x80) {
            int idx = p->table[*q];
            if (idx < 0) {
                char shown[8];
                if (*q >= 0x20 && *q < 0x7f) snprintf(shown, sizeof shown, "%c", *q);
                else snprintf(shown, sizeof shown, "\\x%02x", *q);
                return ff_errorf(FF_EIO, "%s:%lld:%lld: unknown symbol '%s' (alphabet \"%s\"%s)", p->label,
                                 (long long)ln, (long long)col, shown, p->o->alphabet,
                                 p->o->case_policy == FF_SEQ_CASE_EXACT ? ", case-sensitive" : "");
            }
            p->sym[p->nsym_total++] = (unsigned char)idx;
            q++;
            continue;
        }
        size_t l = ff_io_utf8_len(q, (size_t)(e - q));
        if (!l) return ff_errorf(FF_EIO, "%s:%lld:%lld: invalid UTF-8 (byte 0x%02x)", p->label, (long long)ln,
                                 (long long)col, *q);
        return ff_errorf(FF_EIO, "%s:%lld:%lld: unknown symbol '%.*s' (alphabet \"%s\")", p->label, (long long)ln,
                         (long long)col, (int)l, (const char *)q, p->o->alphabet);
    }
    return FF_OK;
}

/* Closes one sequence of length len that started on line ln (FASTA: record name given). */
static ff_status end_sequence(parser *p, int64_t len, int64_t ln, const char *record) {
    char what[100] = "";
    if (record) snprintf(what, sizeof what, " FASTA record \"%s\":", record);
    if (len == 0) return ff_errorf(FF_EIO, "%s:%lld: FASTA record \"%s\" is empty", p->label, (long long)ln, record);
    if (p->L == 0) { p->L = len; p->L_line = ln; }
    else if (len != p->L) {
        char by[48] = "";
        if (p->L_line) snprintf(by, sizeof by, " (set by line %lld)", (long long)p->L_line);
        return ff_errorf(FF_EIO, "%s:%lld:%s sequence of length %lld, expected %lld%s; all sequences must have one length",
                         p->label, (long long)ln, what, (long long)len, (long long)p->L, by);
    }
    p->nseq++;
    return FF_OK;
}

static ff_status parse(parser *p, const unsigned char *b, size_t n) {
    if (n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF) { b += 3; n -= 3; }
    if (n == 0) return ff_errorf(FF_EIO, "%s: empty file; expected sequences over \"%s\"", p->label, p->o->alphabet);
    ff_seq_format fmt = p->o->format;
    const unsigned char *end = b + n;
    int64_t ln = 0;
    int in_record = 0;
    for (const unsigned char *s = b; s < end;) {
        const unsigned char *nl = memchr(s, '\n', (size_t)(end - s));
        const unsigned char *e = nl ? nl : end, *next = nl ? nl + 1 : end;
        ln++;
        if (e > s && e[-1] == '\r') e--;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if (e == s) { s = next; continue; }   /* blank line */
        if (fmt == FF_SEQ_AUTO) fmt = (*s == '>') ? FF_SEQ_FASTA : FF_SEQ_LINES;
        if (fmt == FF_SEQ_LINES) {
            int64_t before = p->nsym_total;
            FF_TRY(scan_symbols(p, s, e, ln));
            FF_TRY(end_sequence(p, p->nsym_total - before, ln, NULL));
        } else if (*s == '>') {
            if (in_record) FF_TRY(end_sequence(p, p->nsym_total - p->rec_start, p->rec_line, p->rec_name));
            int64_t col = 1;
            for (const unsigned char *q = s; q < e; col++) {
                size_t l = ff_io_utf8_len(q, (size_t)(e - q));
                if (!l) return ff_errorf(FF_EIO, "%s:%lld:%lld: invalid UTF-8 in FASTA header (byte 0x%02x)", p->label,
                                         (long long)ln, (long long)col, *q);
                q += l;
            }
            const unsigned char *ne = s + 1;
            while (ne < e && *ne != ' ' && *ne != '\t') ne++;
            size_t nl_ = (size_t)(ne - s - 1);
            if (nl_ > sizeof p->rec_name - 1) nl_ = sizeof p->rec_name - 1;
            memcpy(p->rec_name, s + 1, nl_);
            p->rec_name[nl_] = '\0';
            for (size_t i = 0; i < nl_; i++) if ((unsigned char)p->rec_name[i] < 0x20) p->rec_name[i] = '?';
            p->rec_start = p->nsym_total;
            p->rec_line = ln;
            in_record = 1;
        } else if (*s == ';') {
            /* comment line */
        } else {
            if (!in_record)
                return ff_errorf(FF_EIO, "%s:%lld: sequence line before the first '>' header (FASTA)", p->label, (long long)ln);
            FF_TRY(scan_symbols(p, s, e, ln));
        }
        s = next;
    }
    if (in_record) FF_TRY(end_sequence(p, p->nsym_total - p->rec_start, p->rec_line, p->rec_name));
    if (p->nseq == 0) return ff_errorf(FF_EIO, "%s: no sequences (only blank lines, headers or comments)", p->label);
    return FF_OK;
}

ff_status ff_seq_parse(const void *buf, size_t len, const char *label, const ff_seq_opts *o, ff_tensor_t **out) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_seq_parse: out is NULL");
    *out = NULL;
    if (!buf && len) return ff_errorf(FF_EINVAL, "ff_seq_parse: buf is NULL");
    parser p;
    memset(&p, 0, sizeof p);
    p.label = label ? label : "(memory)";
    p.o = o;
    FF_TRY(build_table(o, p.table, &p.nsym));
    if (o->length > 0) p.L = o->length;
    p.sym = malloc(len ? len : 1);
    if (!p.sym) return ff_errorf(FF_ENOMEM, "ff_seq_parse: %s: cannot allocate %zu bytes", p.label, len);
    ff_status s = parse(&p, buf, len);
    if (s == FF_OK) {
        int64_t A = p.nsym;
        if (p.nseq > INT64_MAX / 8 / p.L / A)
            s = ff_errorf(FF_ENOMEM, "ff_seq_parse: %s: %lld x %lld x %lld one-hot is too large", p.label,
                          (long long)p.nseq, (long long)p.L, (long long)A);
        else s = ff_tensor_new3(out, p.nseq, p.L, A);
        if (s == FF_OK)
            for (int64_t i = 0; i < p.nsym_total; i++) (*out)->data[i * A + p.sym[i]] = 1.0f;
    }
    free(p.sym);
    return s;
}

ff_status ff_seq_read(const char *path, const ff_seq_opts *o, ff_tensor_t **out) {
    if (!out || !path) return ff_errorf(FF_EINVAL, "ff_seq_read: NULL argument");
    *out = NULL;
    unsigned char *b = NULL;
    size_t n = 0;
    FF_TRY(ff_io_read_file(path, &b, &n));
    ff_status s = ff_seq_parse(b, n, path, o, out);
    free(b);
    return s;
}
