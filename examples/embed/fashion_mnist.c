#include "fashion_mnist.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

/* IDX header: magic 0x00000803 (unsigned bytes, 3 dims), then the image
 * count, rows and cols, each a big-endian uint32. */
enum { IDX_HEADER_BYTES = 16, IDX_IMAGES_MAGIC = 0x803 };

static uint32_t read_be32(const unsigned char* bytes) {
  return (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 | (uint32_t)bytes[3];
}

int fashion_mnist_read_image(const char* path, int64_t index, int64_t rows, int64_t cols, float* pixels) {
  const int64_t size = rows * cols;
  unsigned char header[IDX_HEADER_BYTES];
  unsigned char* bytes = NULL;
  const char* error = NULL;
  gzFile file = gzopen(path, "rb");
  if (!file)
    error = "cannot open it (apt install dataset-fashion-mnist)";
  else if (gzread(file, header, sizeof header) != sizeof header || read_be32(header) != IDX_IMAGES_MAGIC)
    error = "not an IDX file of images";
  else if (read_be32(header + 8) != rows || read_be32(header + 12) != cols)
    error = "its images are not the size the model takes";
  else if (index < 0 || index >= read_be32(header + 4))
    error = "no image with that index";
  else if (!(bytes = malloc((size_t)size)))
    error = "out of memory";
  else if (gzseek(file, (z_off_t)(IDX_HEADER_BYTES + index * size), SEEK_SET) < 0 ||
           gzread(file, bytes, (unsigned)size) != size)
    error = "truncated";
  else
    for (int64_t i = 0; i < size; ++i) pixels[i] = (float)bytes[i] / 255.0f;

  if (error) fprintf(stderr, "%s: %s\n", path, error);
  free(bytes);
  if (file) gzclose(file);
  return error ? -1 : 0;
}
