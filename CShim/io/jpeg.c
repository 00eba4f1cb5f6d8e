// JPEG decode/encode through libjpeg(-turbo), with every libjpeg error turned into a return code
// and a one-line message (libjpeg's default handler calls exit()).
#include "em_image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <jpeglib.h>

typedef struct em_jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} em_jpeg_err;

static void em_jpeg_error_exit(j_common_ptr cinfo) {
    em_jpeg_err *e = (em_jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

// A warning (corrupt data, premature end of file) fails the decode at once, because a silently
// grey-filled image would give wrong detections; stopping at the first one also means a tiny
// file that declares a huge image cannot make libjpeg decode all of its missing rows.
static void em_jpeg_emit_message(j_common_ptr cinfo, int level) {
    em_jpeg_err *e = (em_jpeg_err *)cinfo->err;
    if (level < 0) {
        (*cinfo->err->format_message)(cinfo, e->msg);
        cinfo->err->num_warnings++;
        longjmp(e->jump, 1);
    }
}

// A progressive file may hold any number of scans, each costing a pass over the whole
// coefficient buffer; real encoders write about 10. More than this is refused (libjpeg-turbo's
// TurboJPEG API offers the same guard as its scan limit).
#define EM_JPEG_MAX_SCANS 500

static void em_jpeg_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > EM_JPEG_MAX_SCANS) {
        em_jpeg_err *e = (em_jpeg_err *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", EM_JPEG_MAX_SCANS);
        longjmp(e->jump, 1);
    }
}

static void em_jpeg_silent_output(j_common_ptr cinfo) { (void)cinfo; }

static void set_err(char *err, int errlen, const char *prefix, const char *detail) {
    if (!err || errlen <= 0) return;
    if (detail && detail[0])
        snprintf(err, (size_t)errlen, "%s: %s", prefix, detail);
    else
        snprintf(err, (size_t)errlen, "%s", prefix);
}

void em_free(void *p) { free(p); }

int em_jpeg_decode_mem(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **rgb_out,
                       int *w_out, int *h_out, char *err, int errlen) {
    *rgb_out = NULL;
    *w_out = 0;
    *h_out = 0;
    if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
        set_err(err, errlen, size == 0 ? "empty file" : "not a JPEG file (no SOI marker)", NULL);
        return -1;
    }
    if (size > (size_t)0x7fffffff) {
        set_err(err, errlen, "JPEG file too large", NULL);
        return -1;
    }
    struct jpeg_decompress_struct cinfo;
    em_jpeg_err jerr;
    memset(&cinfo, 0, sizeof(cinfo));
    memset(&jerr, 0, sizeof(jerr));
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = em_jpeg_error_exit;
    jerr.pub.emit_message = em_jpeg_emit_message;
    jerr.pub.output_message = em_jpeg_silent_output;
    // volatile: modified between setjmp and a possible longjmp.
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile row = NULL;
    if (setjmp(jerr.jump)) {
        set_err(err, errlen, "corrupt JPEG", jerr.msg);
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return -1;
    }
    struct jpeg_progress_mgr progress;
    memset(&progress, 0, sizeof(progress));
    progress.progress_monitor = em_jpeg_progress;
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, (unsigned char *)data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    const size_t w = cinfo.image_width, h = cinfo.image_height;
    if (w == 0 || h == 0) {
        set_err(err, errlen, "JPEG has zero width or height", NULL);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    if (w * h > max_pixels) {
        char d[128];
        snprintf(d, sizeof d, "%zux%zu = %zu pixels exceeds the limit of %zu (--max-pixels)", w, h,
                 w * h, max_pixels);
        set_err(err, errlen, "image too large", d);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    const int cmyk = (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK);
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    const int comps = cinfo.output_components;
    if ((cmyk && comps != 4) || (!cmyk && comps != 3)) {
        set_err(err, errlen, "unsupported JPEG colour layout", NULL);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    rgb = (uint8_t *)malloc(w * h * 3);
    row = (uint8_t *)malloc(w * (size_t)comps);
    if (!rgb || !row) {
        set_err(err, errlen, "out of memory decoding JPEG", NULL);
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        const size_t y = cinfo.output_scanline;
        JSAMPROW rp = row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) break;
        uint8_t *dst = rgb + y * w * 3;
        if (cmyk) {
            // Adobe writes inverted CMYK; libjpeg passes it through. R = C*K/255 on inverted data.
            for (size_t x = 0; x < w; x++) {
                const unsigned c = row[4 * x], m = row[4 * x + 1], yy = row[4 * x + 2], k = row[4 * x + 3];
                dst[3 * x] = (uint8_t)((c * k + 127) / 255);
                dst[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
                dst[3 * x + 2] = (uint8_t)((yy * k + 127) / 255);
            }
        } else {
            memcpy(dst, row, w * 3);
        }
    }
    const int complete = cinfo.output_scanline == cinfo.output_height;
    if (complete) jpeg_finish_decompress(&cinfo);
    const long warnings = jerr.pub.num_warnings;
    jpeg_destroy_decompress(&cinfo);
    free(row);
    if (!complete || warnings > 0) {
        set_err(err, errlen, "corrupt or truncated JPEG", jerr.msg);
        free(rgb);
        return -1;
    }
    *rgb_out = rgb;
    *w_out = (int)w;
    *h_out = (int)h;
    return 0;
}

// The whole file into a malloc'd buffer.
static int read_all(const char *path, uint8_t **out, size_t *out_n, char *err, int errlen) {
    *out = NULL;
    *out_n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "cannot open", strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        set_err(err, errlen, "cannot read", strerror(errno));
        fclose(f);
        return -1;
    }
    long n = ftell(f);
    if (n < 0) {
        set_err(err, errlen, "cannot read (not a regular file?)", NULL);
        fclose(f);
        return -1;
    }
    rewind(f);
    uint8_t *buf = (uint8_t *)malloc(n > 0 ? (size_t)n : 1);
    if (!buf) {
        set_err(err, errlen, "out of memory reading file", NULL);
        fclose(f);
        return -1;
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || got != (size_t)n) {
        set_err(err, errlen, "cannot read", strerror(errno));
        free(buf);
        return -1;
    }
    *out = buf;
    *out_n = (size_t)n;
    return 0;
}

int em_jpeg_decode_file(const char *path, size_t max_pixels, uint8_t **rgb, int *w, int *h,
                        char *err, int errlen) {
    *rgb = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;
    if (read_all(path, &buf, &n, err, errlen) != 0) return -1;
    int rc = em_jpeg_decode_mem(buf, n, max_pixels, rgb, w, h, err, errlen);
    free(buf);
    return rc;
}

int em_jpeg_size_mem(const uint8_t *data, size_t size, int *w_out, int *h_out, char *err, int errlen) {
    *w_out = 0;
    *h_out = 0;
    if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
        set_err(err, errlen, size == 0 ? "empty file" : "not a JPEG file (no SOI marker)", NULL);
        return -1;
    }
    if (size > (size_t)0x7fffffff) {
        set_err(err, errlen, "JPEG file too large", NULL);
        return -1;
    }
    struct jpeg_decompress_struct cinfo;
    em_jpeg_err jerr;
    memset(&cinfo, 0, sizeof(cinfo));
    memset(&jerr, 0, sizeof(jerr));
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = em_jpeg_error_exit;
    jerr.pub.emit_message = em_jpeg_emit_message;
    jerr.pub.output_message = em_jpeg_silent_output;
    if (setjmp(jerr.jump)) {
        set_err(err, errlen, "corrupt JPEG", jerr.msg);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (unsigned char *)data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    const size_t w = cinfo.image_width, h = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    if (w == 0 || h == 0) {
        set_err(err, errlen, "JPEG has zero width or height", NULL);
        return -1;
    }
    *w_out = (int)w;
    *h_out = (int)h;
    return 0;
}

int em_jpeg_size_file(const char *path, int *w, int *h, char *err, int errlen) {
    *w = 0;
    *h = 0;
    uint8_t *buf = NULL;
    size_t n = 0;
    if (read_all(path, &buf, &n, err, errlen) != 0) return -1;
    int rc = em_jpeg_size_mem(buf, n, w, h, err, errlen);
    free(buf);
    return rc;
}

int em_jpeg_encode_file(const char *path, const uint8_t *rgb, int w, int h, int quality, char *err,
                        int errlen) {
    if (w <= 0 || h <= 0 || !rgb) {
        set_err(err, errlen, "cannot encode an empty image", NULL);
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        set_err(err, errlen, "cannot create", strerror(errno));
        return -1;
    }
    struct jpeg_compress_struct cinfo;
    em_jpeg_err jerr;
    memset(&cinfo, 0, sizeof(cinfo));
    memset(&jerr, 0, sizeof(jerr));
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = em_jpeg_error_exit;
    jerr.pub.output_message = em_jpeg_silent_output;
    if (setjmp(jerr.jump)) {
        set_err(err, errlen, "JPEG encoding failed", jerr.msg);
        jpeg_destroy_compress(&cinfo);
        fclose(f);
        return -1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : (quality > 100 ? 100 : quality), TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rp = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&cinfo, &rp, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        set_err(err, errlen, "cannot write", strerror(errno));
        return -1;
    }
    return 0;
}
