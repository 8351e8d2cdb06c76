// classify_cpp: classify.c with the C++ wrapper kiln/kiln.hpp, whose handles
// release themselves and whose failing calls throw kiln::RuntimeError.
//
//   classify_cpp MODEL.so|ENSEMBLE.json [IMAGE_INDEX]
//
// Exits with 0, 1 on any error, 2 on bad usage.
#include <kiln/kiln.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "fashion_mnist.h"

namespace {

// One test image in and its class scores out, as the kiln_tensors a run takes.
class ImageBatch {
 public:
  // Checks that `model` is a Fashion-MNIST classifier, one image [N, 1, H, W]
  // to class scores [N, C] (asking it rather than assuming 28 x 28 and 10),
  // and reads the image.
  ImageBatch(const kiln::Model& model, const std::string& path, long imageIndex) {
    const kiln_tensor_info input = model.input(0), output = model.output(0);
    if (model.numInputs() != 1 || input.dtype != KILN_F32 || input.rank != 4 || input.dims[1] != 1 ||
        output.dtype != KILN_F32 || output.rank != 2)
      throw std::runtime_error(path + " does not map one image [N, 1, H, W] to class scores [N, C]");
    inputDims_ = {1, 1, input.dims[2], input.dims[3]};  // a batch of one
    outputDims_ = {1, output.dims[1]};
    pixels_.resize(static_cast<size_t>(input.dims[2] * input.dims[3]));
    scores_.resize(static_cast<size_t>(output.dims[1]));
    if (fashion_mnist_read_image(FASHION_MNIST_TEST_IMAGES, imageIndex, input.dims[2], input.dims[3],
                                 pixels_.data()) != 0)
      throw std::runtime_error("cannot read test image " + std::to_string(imageIndex));
  }

  kiln_tensor input() { return {KILN_F32, 4, inputDims_.data(), pixels_.data()}; }
  kiln_tensor output() { return {KILN_F32, 2, outputDims_.data(), scores_.data()}; }
  const std::vector<float>& scores() const { return scores_; }

 private:
  std::array<int64_t, 4> inputDims_{};
  std::array<int64_t, 2> outputDims_{};
  std::vector<float> pixels_, scores_;
};

struct Prediction {
  std::vector<float> scores;        // per class
  std::vector<std::string> labels;  // class names; empty when the model has none
};

Prediction classify(const std::string& path, long imageIndex) {
  const bool isEnsemble = path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  // A context holds the per-run memory: create it once, run it many times.
  if (isEnsemble) {
    const kiln::Ensemble ensemble = kiln::Ensemble::open(path);
    // The members all agree on input and output: check the first one's.
    ImageBatch batch(ensemble.member(0).model, path, imageIndex);
    kiln::EnsembleContext context(ensemble);
    context.run(std::array{batch.input()}, batch.output());
    return {batch.scores(), ensemble.labels()};
  }
  const kiln::Model model = kiln::Model::open(path);
  ImageBatch batch(model, path, imageIndex);
  kiln::Context context(model);
  context.run(std::array{batch.input()}, std::array{batch.output()});
  return {batch.scores(), model.labels()};
}

}  // namespace

int main(int argc, char** argv) {
  char* end = nullptr;
  const long imageIndex = argc == 3 ? std::strtol(argv[2], &end, 10) : 0;
  if (argc < 2 || argc > 3 || (end && (end == argv[2] || *end != '\0'))) {
    std::cerr << "usage: classify_cpp MODEL.so|ENSEMBLE.json [IMAGE_INDEX]\n";
    return 2;
  }

  try {
    const Prediction prediction = classify(argv[1], imageIndex);
    const auto best = std::max_element(prediction.scores.begin(), prediction.scores.end());
    const auto classIndex = static_cast<size_t>(std::distance(prediction.scores.begin(), best));
    std::cout << "image " << imageIndex << ": class " << classIndex;
    if (classIndex < prediction.labels.size()) std::cout << " (" << prediction.labels[classIndex] << ")";
    std::cout << ", probability " << std::fixed << std::setprecision(3) << *best << "\n";
    return 0;
  } catch (const kiln::RuntimeError& e) {
    std::cerr << "classify: " << e.what() << " (" << kiln_status_name(e.status()) << ")\n";
  } catch (const std::exception& e) {
    std::cerr << "classify: " << e.what() << "\n";
  }
  return 1;
}
