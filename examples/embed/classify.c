/* classify_c: runs a model compiled by `kiln compile` (MODEL.so), or a
 * weighted ensemble of them (a kiln-ensemble manifest, ENSEMBLE.json), on one
 * Fashion-MNIST test image and prints the predicted class.
 *
 *   classify_c MODEL.so|ENSEMBLE.json [IMAGE_INDEX]
 *
 * Every kiln call that can fail returns a kiln_status; kiln_last_error() says
 * why. Exits with 0, 1 on any error, 2 on bad usage. */
#include <kiln/kiln.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fashion_mnist.h"

/* Everything classify() opens or allocates; main() releases it. */
typedef struct resources {
  kiln_model* model; /* or */
  kiln_ensemble* ensemble;
  kiln_context* context; /* or */
  kiln_ensemble_context* ensemble_context;
  float* pixels;
  float* probabilities;
} resources;

/* Runs a kiln call; on failure prints the call and the runtime's message and
 * returns 1 from the calling function. */
#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != KILN_OK) {                                          \
      fprintf(stderr, "classify: %s: %s\n", #call, kiln_last_error()); \
      return 1;                                                       \
    }                                                                 \
  } while (0)

/* The model's name for class `index` (artifact ABI 1.1 labels), or NULL. */
static const char* model_label(const kiln_model* model, int32_t index) {
  const kiln_artifact* artifact = kiln_model_descriptor(model);
  return artifact->abi_minor >= 1 && index < artifact->num_labels ? artifact->labels[index] : NULL;
}

/* Classifies test image `image_index` with the model or ensemble at `path`;
 * returns the exit status. */
static int classify(const char* path, long image_index, resources* r) {
  const size_t path_length = strlen(path);
  const int is_ensemble = path_length > 5 && strcmp(path + path_length - 5, ".json") == 0;

  /* The model whose input and output we check: an ensemble's members all
   * agree on them, so its first member. */
  const kiln_model* io_model = NULL;
  if (is_ensemble) {
    float weight;
    CHECK(kiln_ensemble_open(path, &r->ensemble));
    CHECK(kiln_ensemble_member(r->ensemble, 0, &io_model, &weight));
  } else {
    CHECK(kiln_model_open(path, &r->model));
    io_model = r->model;
  }

  /* A Fashion-MNIST classifier takes one image [N, 1, H, W] and returns class
   * scores [N, C]; ask the model rather than assume 28 x 28 and 10. */
  kiln_tensor_info input, output;
  CHECK(kiln_model_input(io_model, 0, &input));
  CHECK(kiln_model_output(io_model, 0, &output));
  if (kiln_model_num_inputs(io_model) != 1 || input.dtype != KILN_F32 || input.rank != 4 || input.dims[1] != 1 ||
      output.dtype != KILN_F32 || output.rank != 2) {
    fprintf(stderr, "classify: %s does not map one image [N, 1, H, W] to class scores [N, C]\n", path);
    return 1;
  }
  const int64_t input_dims[4] = {1, 1, input.dims[2], input.dims[3]}; /* a batch of one */
  const int64_t output_dims[2] = {1, output.dims[1]};
  const int32_t num_classes = (int32_t)output.dims[1];

  r->pixels = malloc((size_t)(input_dims[2] * input_dims[3]) * sizeof *r->pixels);
  r->probabilities = malloc((size_t)num_classes * sizeof *r->probabilities);
  if (!r->pixels || !r->probabilities) {
    fprintf(stderr, "classify: out of memory\n");
    return 1;
  }
  if (fashion_mnist_read_image(FASHION_MNIST_TEST_IMAGES, image_index, input_dims[2], input_dims[3], r->pixels) != 0)
    return 1;

  const kiln_tensor image = {KILN_F32, 4, input_dims, r->pixels};
  const kiln_tensor prediction = {KILN_F32, 2, output_dims, r->probabilities};
  /* A context holds the per-run memory: create it once, run it many times. */
  if (is_ensemble) {
    CHECK(kiln_ensemble_context_create(r->ensemble, NULL, &r->ensemble_context));
    CHECK(kiln_ensemble_run(r->ensemble_context, &image, 1, &prediction, NULL));
  } else {
    CHECK(kiln_context_create(r->model, NULL, &r->context));
    CHECK(kiln_run(r->context, &image, 1, &prediction, 1));
  }

  int32_t best = 0;
  for (int32_t c = 1; c < num_classes; ++c)
    if (r->probabilities[c] > r->probabilities[best]) best = c;
  const char* label = is_ensemble ? kiln_ensemble_label(r->ensemble, best) : model_label(r->model, best);
  printf("image %ld: class %d", image_index, (int)best);
  if (label) printf(" (%s)", label);
  printf(", probability %.3f\n", (double)r->probabilities[best]);
  return 0;
}

int main(int argc, char** argv) {
  char* end = NULL;
  const long image_index = argc == 3 ? strtol(argv[2], &end, 10) : 0;
  if (argc < 2 || argc > 3 || (end && (end == argv[2] || *end != '\0'))) {
    fprintf(stderr, "usage: classify_c MODEL.so|ENSEMBLE.json [IMAGE_INDEX]\n");
    return 2;
  }

  resources r = {0};
  const int exit_status = classify(argv[1], image_index, &r);
  free(r.probabilities);
  free(r.pixels);
  kiln_ensemble_context_destroy(r.ensemble_context);
  kiln_context_destroy(r.context);
  kiln_ensemble_release(r.ensemble);
  kiln_model_release(r.model);
  return exit_status;
}
