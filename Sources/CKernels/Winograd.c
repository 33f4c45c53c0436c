// Winograd F(2x2, 3x3) transforms for 3x3, stride-1, pad-1 convolutions (Lavin & Gray 2016).
//
// With the 4x4 input tile d, the 3x3 filter g and the 2x2 output tile y:
//     y = A^T [ (G g G^T) .* (B^T d B) ] A
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// The 16 products (one per transformed position k = 4i + j) become 16 GEMMs over
// channels, done by the caller. The backward passes are the transposes:
//     dM = A dY A^T,   dU = sum over tiles dM V^T,   dg = G^T dU G,
//     dV = U^T dM,     dd = B dV B^T (folded back into overlapping input tiles).
// Every coefficient is 0, +-1 or +-0.5, so the transforms add no rounding beyond
// the additions themselves.
//
// Loops run over tx with unit-stride loads and stores so that they vectorize: image rows
// are first split into even and odd columns (padded column 2q and 2q+1, i.e. image
// columns 2q-1 and 2q), which makes a tile's four columns E[tx], O[tx], E[tx+1], O[tx+1].
//
// The tile transforms work on one sample's block of tile rows ty0 <= ty < ty1 (the caller
// sizes blocks so that a block's V and M stay in L2 between transform and GEMM). Layouts:
// th = ceil(h/2), tw = ceil(w/2), a block holds T = (ty1 - ty0) * tw tiles, tile
// t = (ty - ty0) * tw + tx; V, M, dM, dV are [16][channels][T]; U, dU are [16][cout][cin].
// Tile (ty, tx) reads input rows 2ty-1 .. 2ty+2 and columns 2tx-1 .. 2tx+2 (outside the
// image: zero) and covers output rows 2ty, 2ty+1 and columns 2tx, 2tx+1 (outside: dropped).

#include "CKernels.h"
#include "Clones.h"
#include <string.h>


SPADE_CLONES
void spade_winograd_filter(const float *restrict g, float *restrict u, size_t cout, size_t cin) {
    const size_t plane = cout * cin;
    for (size_t p = 0; p < plane; p++) {
        const float *w = g + 9 * p;
        const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8];
        // G g (rows), then (G g) G^T (columns)
        const float a0 = w0, a1 = w1, a2 = w2;
        const float b0 = 0.5f * (w0 + w3 + w6), b1 = 0.5f * (w1 + w4 + w7), b2 = 0.5f * (w2 + w5 + w8);
        const float c0 = 0.5f * (w0 - w3 + w6), c1 = 0.5f * (w1 - w4 + w7), c2 = 0.5f * (w2 - w5 + w8);
        const float d0 = w6, d1 = w7, d2 = w8;
        u[0 * plane + p] = a0; u[1 * plane + p] = 0.5f * (a0 + a1 + a2); u[2 * plane + p] = 0.5f * (a0 - a1 + a2); u[3 * plane + p] = a2;
        u[4 * plane + p] = b0; u[5 * plane + p] = 0.5f * (b0 + b1 + b2); u[6 * plane + p] = 0.5f * (b0 - b1 + b2); u[7 * plane + p] = b2;
        u[8 * plane + p] = c0; u[9 * plane + p] = 0.5f * (c0 + c1 + c2); u[10 * plane + p] = 0.5f * (c0 - c1 + c2); u[11 * plane + p] = c2;
        u[12 * plane + p] = d0; u[13 * plane + p] = 0.5f * (d0 + d1 + d2); u[14 * plane + p] = 0.5f * (d0 - d1 + d2); u[15 * plane + p] = d2;
    }
}

SPADE_CLONES
void spade_winograd_filter_grad(const float *restrict du, float *restrict dg, size_t cout, size_t cin, int accumulate) {
    const size_t plane = cout * cin;
    for (size_t p = 0; p < plane; p++) {
        float t[4][3];   // dU G
        for (int i = 0; i < 4; i++) {
            const float d0 = du[(4 * i + 0) * plane + p], d1 = du[(4 * i + 1) * plane + p];
            const float d2 = du[(4 * i + 2) * plane + p], d3 = du[(4 * i + 3) * plane + p];
            t[i][0] = d0 + 0.5f * (d1 + d2);
            t[i][1] = 0.5f * (d1 - d2);
            t[i][2] = 0.5f * (d1 + d2) + d3;
        }
        float *w = dg + 9 * p;   // G^T (dU G), accumulated or overwritten
        for (int b = 0; b < 3; b++) {
            const float r0 = t[0][b] + 0.5f * (t[1][b] + t[2][b]);
            const float r1 = 0.5f * (t[1][b] - t[2][b]);
            const float r2 = 0.5f * (t[1][b] + t[2][b]) + t[3][b];
            w[b] = accumulate ? w[b] + r0 : r0;
            w[3 + b] = accumulate ? w[3 + b] + r1 : r1;
            w[6 + b] = accumulate ? w[6 + b] + r2 : r2;
        }
    }
}

/// Image row (or NULL: zeros) -> even[q] = column 2q-1, odd[q] = column 2q, q = 0 .. tw (zero outside).
static inline void split_padded_row(const float *restrict row, size_t w, size_t tw, float *restrict even,
                                    float *restrict odd) {
    if (!row) {
        memset(even, 0, (tw + 1) * sizeof(float));
        memset(odd, 0, (tw + 1) * sizeof(float));
        return;
    }
    const size_t pairs = w / 2;   // one loop over column pairs: an interleaved load that vectorizes
    for (size_t q = 0; q < pairs; q++) { odd[q] = row[2 * q]; even[q + 1] = row[2 * q + 1]; }
    even[0] = 0.0f;
    for (size_t q = pairs + 1; q <= tw; q++) even[q] = 0.0f;
    for (size_t q = pairs; q <= tw; q++) odd[q] = 0.0f;
    if (w % 2) odd[tw - 1] = row[w - 1];
}

SPADE_CLONES
void spade_winograd_input(const float *restrict x, float *restrict v, size_t channels, size_t h, size_t w,
                          size_t ty0, size_t ty1, float *restrict scratch) {
    const size_t tw = (w + 1) / 2, tiles = (ty1 - ty0) * tw;
    const size_t stride16 = channels * tiles;
    float *restrict e[4], *restrict o[4];
    for (int a = 0; a < 4; a++) { e[a] = scratch + 2 * a * (tw + 1); o[a] = e[a] + (tw + 1); }
    {
        for (size_t c = 0; c < channels; c++) {
            const float *plane = x + c * h * w;
            float *out = v + c * tiles - ty0 * tw;
            for (size_t ty = ty0; ty < ty1; ty++) {
                for (int a = 0; a < 4; a++) {
                    const long row = 2 * (long)ty - 1 + a;
                    split_padded_row((row >= 0 && row < (long)h) ? plane + row * w : NULL, w, tw, e[a], o[a]);
                }
                const float *restrict e0 = e[0], *restrict e1 = e[1], *restrict e2 = e[2], *restrict e3 = e[3];
                const float *restrict o0 = o[0], *restrict o1 = o[1], *restrict o2 = o[2], *restrict o3 = o[3];
                float *restrict ot = out + ty * tw;
                for (size_t tx = 0; tx < tw; tx++) {
                    // the tile's columns: E[tx], O[tx], E[tx+1], O[tx+1]; rows first (B^T d) ...
                    float t[4][4];
                    const float col[4][4] = {{e0[tx], o0[tx], e0[tx + 1], o0[tx + 1]}, {e1[tx], o1[tx], e1[tx + 1], o1[tx + 1]},
                                             {e2[tx], o2[tx], e2[tx + 1], o2[tx + 1]}, {e3[tx], o3[tx], e3[tx + 1], o3[tx + 1]}};
                    for (int b = 0; b < 4; b++) {
                        t[0][b] = col[0][b] - col[2][b];
                        t[1][b] = col[1][b] + col[2][b];
                        t[2][b] = col[2][b] - col[1][b];
                        t[3][b] = col[1][b] - col[3][b];
                    }
                    for (int i = 0; i < 4; i++) {   // ... then columns ((B^T d) B)
                        ot[(4 * i + 0) * stride16 + tx] = t[i][0] - t[i][2];
                        ot[(4 * i + 1) * stride16 + tx] = t[i][1] + t[i][2];
                        ot[(4 * i + 2) * stride16 + tx] = t[i][2] - t[i][1];
                        ot[(4 * i + 3) * stride16 + tx] = t[i][1] - t[i][3];
                    }
                }
            }
        }
    }
}

SPADE_CLONES
void spade_winograd_output(const float *restrict m, const float *restrict bias, float *restrict y,
                           size_t channels, size_t h, size_t w, size_t ty0, size_t ty1, float *restrict scratch) {
    const size_t tw = (w + 1) / 2, tiles = (ty1 - ty0) * tw;
    const size_t stride16 = channels * tiles, pairs = w / 2;
    // The tile row's output rows 2ty and 2ty+1, split into even and odd columns.
    float *restrict y0e = scratch, *restrict y0o = y0e + tw, *restrict y1e = y0o + tw, *restrict y1o = y1e + tw;
    {
        for (size_t c = 0; c < channels; c++) {
            float *plane = y + c * h * w;
            const float b = bias ? bias[c] : 0.0f;
            const float *in = m + c * tiles - ty0 * tw;
            for (size_t ty = ty0; ty < ty1; ty++) {
                const float *restrict mt = in + ty * tw;
                for (size_t tx = 0; tx < tw; tx++) {
                    float a[4][2];   // M A
                    for (int i = 0; i < 4; i++) {
                        const float m0 = mt[(4 * i + 0) * stride16 + tx], m1 = mt[(4 * i + 1) * stride16 + tx];
                        const float m2 = mt[(4 * i + 2) * stride16 + tx], m3 = mt[(4 * i + 3) * stride16 + tx];
                        a[i][0] = m0 + m1 + m2;
                        a[i][1] = m1 - m2 - m3;
                    }
                    y0e[tx] = a[0][0] + a[1][0] + a[2][0] + b;
                    y0o[tx] = a[0][1] + a[1][1] + a[2][1] + b;
                    y1e[tx] = a[1][0] - a[2][0] - a[3][0] + b;
                    y1o[tx] = a[1][1] - a[2][1] - a[3][1] + b;
                }
                float *restrict r0 = plane + 2 * ty * w;
                for (size_t q = 0; q < pairs; q++) { r0[2 * q] = y0e[q]; r0[2 * q + 1] = y0o[q]; }
                if (w % 2) r0[w - 1] = y0e[tw - 1];
                if (2 * ty + 1 < h) {
                    float *restrict r1 = r0 + w;
                    for (size_t q = 0; q < pairs; q++) { r1[2 * q] = y1e[q]; r1[2 * q + 1] = y1o[q]; }
                    if (w % 2) r1[w - 1] = y1e[tw - 1];
                }
            }
        }
    }
}

SPADE_CLONES
void spade_winograd_output_grad(const float *restrict dy, float *restrict dm, size_t channels, size_t h, size_t w,
                                size_t ty0, size_t ty1, float *restrict scratch) {
    const size_t tw = (w + 1) / 2, tiles = (ty1 - ty0) * tw;
    const size_t stride16 = channels * tiles, pairs = w / 2;
    // dY rows 2ty and 2ty+1 split into even and odd columns (zero outside the image).
    float *restrict g0e = scratch, *restrict g0o = g0e + tw, *restrict g1e = g0o + tw, *restrict g1o = g1e + tw;
    {
        for (size_t c = 0; c < channels; c++) {
            const float *plane = dy + c * h * w;
            float *out = dm + c * tiles - ty0 * tw;
            for (size_t ty = ty0; ty < ty1; ty++) {
                const float *restrict r0 = plane + 2 * ty * w;
                for (size_t q = 0; q < pairs; q++) { g0e[q] = r0[2 * q]; g0o[q] = r0[2 * q + 1]; }
                if (w % 2) { g0e[tw - 1] = r0[w - 1]; g0o[tw - 1] = 0.0f; }
                if (2 * ty + 1 < h) {
                    const float *restrict r1 = r0 + w;
                    for (size_t q = 0; q < pairs; q++) { g1e[q] = r1[2 * q]; g1o[q] = r1[2 * q + 1]; }
                    if (w % 2) { g1e[tw - 1] = r1[w - 1]; g1o[tw - 1] = 0.0f; }
                } else {
                    memset(g1e, 0, 2 * tw * sizeof(float));
                }
                float *restrict ot = out + ty * tw;
                for (size_t tx = 0; tx < tw; tx++) {
                    const float g00 = g0e[tx], g01 = g0o[tx], g10 = g1e[tx], g11 = g1o[tx];
                    // rows of A dY: (g0, g0 + g1, g0 - g1, -g1); then columns the same way
                    const float r[4][2] = {{g00, g01}, {g00 + g10, g01 + g11}, {g00 - g10, g01 - g11}, {-g10, -g11}};
                    for (int i = 0; i < 4; i++) {
                        ot[(4 * i + 0) * stride16 + tx] = r[i][0];
                        ot[(4 * i + 1) * stride16 + tx] = r[i][0] + r[i][1];
                        ot[(4 * i + 2) * stride16 + tx] = r[i][0] - r[i][1];
                        ot[(4 * i + 3) * stride16 + tx] = -r[i][1];
                    }
                }
            }
        }
    }
}

/// Adds padded row `row` (even and odd columns) into image row row - 1 of `plane`, if it is one.
static inline void add_padded_row(const float *restrict even, const float *restrict odd, long row, size_t h, size_t w,
                                  size_t tw, float *restrict plane) {
    if (row < 1 || row > (long)h) return;
    float *restrict dst = plane + (size_t)(row - 1) * w;   // (row, 2q) = odd[q], (row, 2q + 1) = even[q + 1]
    const size_t pairs = w / 2;
    for (size_t q = 0; q < pairs; q++) { dst[2 * q] += odd[q]; dst[2 * q + 1] += even[q + 1]; }
    if (w % 2) dst[w - 1] += odd[tw - 1];
}

SPADE_CLONES
void spade_winograd_input_grad(const float *restrict dv, float *restrict dx, size_t channels, size_t h, size_t w,
                               size_t ty0, size_t ty1, float *restrict scratch) {
    const size_t tw = (w + 1) / 2, tiles = (ty1 - ty0) * tw;
    const size_t stride16 = channels * tiles;
    // The tiles' input gradients overlap by two rows and two columns. Padded row r collects
    // tile rows (r - 3) / 2 .. r / 2, so it is complete once tile row r / 2 is done: the rows
    // are summed in a ring of four (kept as even and odd columns: even[q], odd[q]) that stays
    // in L1, through a per-tile-row patch buffer so that every loop is free of overlapping writes.
    // The two rows the next block also touches are added to dx as partial sums.
    const size_t rowLen = 2 * (tw + 1);
    float *restrict ring = scratch;
    float *restrict patch = ring + 4 * rowLen;   // [4 rows][4 columns][tw]
    {
        for (size_t c = 0; c < channels; c++) {
            memset(ring, 0, 4 * rowLen * sizeof(float));
            float *plane = dx + c * h * w;
            const float *in = dv + c * tiles - ty0 * tw;
            for (size_t ty = ty0; ty < ty1; ty++) {
                const float *restrict vt = in + ty * tw;
                for (size_t tx = 0; tx < tw; tx++) {
                    float q[4][4];   // dV B^T: columns combined
                    for (int i = 0; i < 4; i++) {
                        const float v0 = vt[(4 * i + 0) * stride16 + tx], v1 = vt[(4 * i + 1) * stride16 + tx];
                        const float v2 = vt[(4 * i + 2) * stride16 + tx], v3 = vt[(4 * i + 3) * stride16 + tx];
                        q[i][0] = v0;
                        q[i][1] = v1 - v2 + v3;
                        q[i][2] = v1 + v2 - v0;
                        q[i][3] = -v3;
                    }
                    for (int b = 0; b < 4; b++) {   // B (dV B^T): rows combined
                        patch[(0 * 4 + b) * tw + tx] = q[0][b];
                        patch[(1 * 4 + b) * tw + tx] = q[1][b] - q[2][b] + q[3][b];
                        patch[(2 * 4 + b) * tw + tx] = q[1][b] + q[2][b] - q[0][b];
                        patch[(3 * 4 + b) * tw + tx] = -q[3][b];
                    }
                }
                for (int a = 0; a < 4; a++) {   // patch row a -> padded row 2ty + a, columns 2tx .. 2tx + 3
                    float *restrict even = ring + ((2 * ty + a) % 4) * rowLen, *restrict odd = even + (tw + 1);
                    const float *restrict p0 = patch + (a * 4 + 0) * tw, *restrict p1 = patch + (a * 4 + 1) * tw;
                    const float *restrict p2 = patch + (a * 4 + 2) * tw, *restrict p3 = patch + (a * 4 + 3) * tw;
                    for (size_t tx = 0; tx < tw; tx++) { even[tx] += p0[tx]; odd[tx] += p1[tx]; }
                    for (size_t tx = 0; tx < tw; tx++) { even[tx + 1] += p2[tx]; odd[tx + 1] += p3[tx]; }
                }
                // Padded rows 2ty and 2ty + 1 are complete: add them to dx, free their slots.
                for (size_t r = 2 * ty; r < 2 * ty + 2; r++) {
                    float *restrict even = ring + (r % 4) * rowLen;
                    add_padded_row(even, even + (tw + 1), (long)r, h, w, tw, plane);
                    memset(even, 0, rowLen * sizeof(float));
                }
            }
            for (size_t r = 2 * ty1; r < 2 * ty1 + 2; r++) {   // the block's last two padded rows
                const float *restrict even = ring + (r % 4) * rowLen;
                add_padded_row(even, even + (tw + 1), (long)r, h, w, tw, plane);
            }
        }
    }
}
