// The training objective (see objective.h).
#include "trainer/search/objective.h"

#include "trainer/fit.h"

namespace kiln::train::search {

Objective trainingObjective(const TrainValSplit& data, int64_t validationSize, TrainingObjectiveOptions opts) {
  return [&data, validationSize, opts](const nlohmann::json& specJson, Trial& trial) {
    ModelSpec spec = parseSpec(specJson, "trial " + std::to_string(trial.record().id));
    if (spec.training.validationSize != validationSize)
      throw SpecError("a trial may not change training.validation_size (the split is made once per search)");
    Sequential model(spec, opts.seed);
    FitOptions fitOpts;
    fitOpts.epochs = opts.epochs.value_or(spec.training.epochs);
    fitOpts.seed = opts.seed;
    fitOpts.trainLimit = opts.trainLimit;
    fitOpts.onEpoch = [&](int64_t epoch, const EpochRecord& rec) { trial.report(epoch, rec.validation.loss, epoch + 1 == fitOpts.epochs); };
    FitResult result = fit(model, spec.training, data, fitOpts);
    return result.history.at(static_cast<size_t>(result.bestEpoch)).validation.loss;
  };
}

}  // namespace kiln::train::search
