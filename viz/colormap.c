/* colormap.c — viridis (sequential heat maps) and the Okabe-Ito palette (line plots).
 * viridis: van der Walt & Smith (2015), sampled at 9 equally spaced points (the published hex values,
 * e.g. R viridisLite::viridis(9)) and interpolated linearly in sRGB. Okabe & Ito (2008), "Color
 * Universal Design". */
#include <math.h>
#include <string.h>
#include "viz_internal.h"

static const uint8_t viridis_keys[9][3] = {
    {  68,   1,  84 }, {  71,  45, 123 }, {  59,  82, 139 }, {  44, 114, 142 }, {  33, 144, 140 },
    {  39, 173, 129 }, {  93, 200,  99 }, { 170, 220,  50 }, { 253, 231,  37 },
};

void ff_viz_viridis(double t, uint8_t rgb[3]) {
    if (!(t > 0)) t = 0;               /* also NaN */
    if (t > 1) t = 1;
    double x = t * 8;
    int k = (int)x;
    if (k > 7) k = 7;
    double f = x - k;
    for (int c = 0; c < 3; c++) {
        double v = viridis_keys[k][c] + f * (viridis_keys[k + 1][c] - viridis_keys[k][c]);
        rgb[c] = (uint8_t)lround(v);
    }
}

/* Okabe-Ito without yellow (too light on white) and with black last. */
static const uint8_t palette[7][3] = {
    {   0, 114, 178 },   /* blue       */
    { 213,  94,   0 },   /* vermillion */
    {   0, 158, 115 },   /* green      */
    { 204, 121, 167 },   /* purple     */
    { 230, 159,   0 },   /* orange     */
    {  86, 180, 233 },   /* sky blue   */
    {   0,   0,   0 },   /* black      */
};

void viz_palette(int i, double rgb[3]) {
    const uint8_t *c = palette[(i % 7 + 7) % 7];
    for (int k = 0; k < 3; k++) rgb[k] = c[k] / 255.0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int viz_parse_color(const char *s, double rgb[3]) {
    if (!s || s[0] != '#' || strlen(s) != 7) return 0;
    for (int k = 0; k < 3; k++) {
        int hi = hexval(s[1 + 2 * k]), lo = hexval(s[2 + 2 * k]);
        if (hi < 0 || lo < 0) return 0;
        rgb[k] = (hi * 16 + lo) / 255.0;
    }
    return 1;
}
