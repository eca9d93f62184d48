/* ticks.c — tick positions (1-2-5 rule; decades on log axes) and their labels.
 * Heckbert, "Nice numbers for graph labels", Graphics Gems (1990). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "viz_internal.h"

static int linear_ticks(double lo, double hi, double *ticks, int max) {
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;      /* 3 to 8 ticks */
    double k0 = ceil(lo / step - 1e-9), k1 = floor(hi / step + 1e-9);
    int n = 0;
    for (double k = k0; k <= k1 && n < max; k++) {
        double v = k * step;
        ticks[n++] = fabs(v) < 1e-9 * step ? 0.0 : v;
    }
    return n;
}

static int mantissa_ticks(double lo, double hi, const int *mant, int n_mant, double *ticks, int max) {
    int n = 0;
    for (int d = (int)floor(log10(lo)); d <= (int)ceil(log10(hi)); d++)
        for (int m = 0; m < n_mant; m++) {
            double v = mant[m] * pow(10, d);
            if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) && n < max) ticks[n++] = v;
        }
    return n;
}

ff_status ff_viz_ticks(double lo, double hi, int32_t log_scale, double *ticks, int32_t max, int32_t *n) {
    if (!ticks || !n || max < 1) return ff_errorf(FF_EINVAL, "ff_viz_ticks: ticks/n NULL or max %d < 1", (int)max);
    *n = 0;
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return ff_errorf(FF_EINVAL, "ff_viz_ticks: range [%g, %g] is empty or not finite", lo, hi);
    if (!log_scale) { *n = linear_ticks(lo, hi, ticks, max); return FF_OK; }
    if (!(lo > 0))
        return ff_errorf(FF_EINVAL, "ff_viz_ticks: log range [%g, %g] must be positive", lo, hi);
    int d0 = (int)ceil(log10(lo) - 1e-9), d1 = (int)floor(log10(hi) + 1e-9);
    if (d1 - d0 + 1 >= 2) {
        int every = (d1 - d0 + 8) / 8, k = 0;            /* at most ~8 labelled decades */
        for (int d = d0; d <= d1 && k < max; d++)
            if (((d % every) + every) % every == 0) ticks[k++] = pow(10, d);
        *n = k;
        return FF_OK;
    }
    static const int m125[] = { 1, 2, 5 }, m19[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    int k = mantissa_ticks(lo, hi, m125, 3, ticks, max);
    if (k < 3) k = mantissa_ticks(lo, hi, m19, 9, ticks, max);
    if (k < 2) k = linear_ticks(lo, hi, ticks, max);
    *n = k;
    return FF_OK;
}

static const char *superscript[10] = { "\u2070", "\u00b9", "\u00b2", "\u00b3", "\u2074",
                                       "\u2075", "\u2076", "\u2077", "\u2078", "\u2079" };

void ff_viz_tick_label(double v, double step, int32_t log_scale, char *buf, size_t size) {
    if (!buf || size == 0) return;
    if (log_scale && v > 0) {
        double e = log10(v);
        if (step >= 9.99 && fabs(e - round(e)) < 1e-9) {  /* decade ticks: 10 with a superscript */
            int d = (int)round(e);
            char digits[16];
            snprintf(digits, sizeof digits, "%d", d < 0 ? -d : d);
            snprintf(buf, size, "10%s", d < 0 ? "\u207b" : "");
            for (char *c = digits; *c; c++) strncat(buf, superscript[*c - '0'], size - strlen(buf) - 1);
            return;
        }
        snprintf(buf, size, "%.3g", v);
        return;
    }
    if (fabs(v) < 1e-12 * (step > 0 ? step : 1)) v = 0;
    if (step <= 0 || fabs(v) >= 1e6 || step < 1e-4) { snprintf(buf, size, "%.4g", v); return; }
    int dec = (int)ceil(-log10(step) - 1e-9);
    if (dec < 0) dec = 0;
    /* steps like 0.25 are not 1-2-5, but callers' vmin/vmax can make them: show enough digits */
    double r = step * pow(10, dec);
    if (fabs(r - round(r)) > 1e-6) dec++;
    snprintf(buf, size, "%.*f", dec, v);
}
