// edge-mrcnn image I/O (libjpeg). Errors never abort: each call returns 0 on success or -1 and a
// one-line message in err (errlen bytes).
#ifndef EM_IMAGE_H
#define EM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Decode a JPEG (grayscale, YCbCr, CMYK handled; progressive too) into 8-bit interleaved RGB
// [h, w, 3]. *rgb is malloc'd (free with em_free). Images with more than max_pixels pixels are
// refused before any pixel is decoded.
int em_jpeg_decode_file(const char *path, size_t max_pixels, uint8_t **rgb, int *w, int *h,
                        char *err, int errlen);
int em_jpeg_decode_mem(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **rgb, int *w,
                       int *h, char *err, int errlen);

// Width and height from the frame header only (no pixel is decoded): for limits checked before
// decoding.
int em_jpeg_size_file(const char *path, int *w, int *h, char *err, int errlen);
int em_jpeg_size_mem(const uint8_t *data, size_t size, int *w, int *h, char *err, int errlen);

// Encode RGB [h, w, 3] as a baseline JPEG file.
int em_jpeg_encode_file(const char *path, const uint8_t *rgb, int w, int h, int quality, char *err,
                        int errlen);

void em_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
