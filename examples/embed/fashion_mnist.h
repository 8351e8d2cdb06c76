/* Reads one image of the Fashion-MNIST test set that Debian ships (package
 * dataset-fashion-mnist: IDX format, gzip-compressed). Plain C with zlib,
 * shared by classify.c and classify.cpp. */
#ifndef FASHION_MNIST_H
#define FASHION_MNIST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FASHION_MNIST_TEST_IMAGES "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

/* Writes image `index` of the IDX file `path` to pixels[rows * cols], scaled
 * from 0..255 to [0, 1]. The file's images must be rows x cols. Returns 0, or
 * -1 after printing what is wrong to stderr. */
int fashion_mnist_read_image(const char* path, int64_t index, int64_t rows, int64_t cols, float* pixels);

#ifdef __cplusplus
}
#endif

#endif /* FASHION_MNIST_H */
