"""Nothing silently wrong in a model file: a header and arrays that disagree, a field of the
wrong type, an option nobody knows, or numbers no training produces are refused at load with a
ModelFormatError naming the file and the field, never loaded to compute something else or to
fail later inside a kernel."""

import numpy as np
import pytest

from anirec import ModelFormatError, Recommender

from .conftest import edit_header, header_of, npy, rebuild


def _array(path, name):
    return np.load(path)[name].copy()


def _load(target, message):
    with pytest.raises(ModelFormatError, match=message) as caught:
        Recommender.load(target)
    assert "'" + str(target) in str(caught.value)  # the file is named
    return caught.value


# ---------------------------------------------------------------------------------------------
# Header and arrays that disagree


@pytest.mark.parametrize("case,edit,message", [
    ("no bias_mean", lambda h: h["model"].pop("bias_mean"),
     r"'model.bias_mean' \(and the bias arrays\) is present|bias_mean.*missing"),
    ("bias_mean true", lambda h: h["model"].__setitem__("bias_mean", True),
     r"'model.bias_mean' is True, expected int or float"),
    ("bias_mean huge", lambda h: h["model"].__setitem__("bias_mean", 1e308),
     r"'model.bias_mean' is 1e\+308, expected a number in \[1.0, 10.0\]"),
    ("biases 'yes'", lambda h: h["model"]["config"].__setitem__("biases", "yes"),
     r"'model.config' is invalid: biases must be True or False, got 'yes'"),
    ("prior 'no'", lambda h: h["model"]["config"].__setitem__("popularity_prior", "no"),
     r"'model.config' is invalid: popularity_prior must be True or False"),
    ("unknown config", lambda h: h["model"]["config"].__setitem__("layer", [3]),
     r"'model.config.layer' is not a field"),
    ("calibration", lambda h: h["model"].__setitem__("calibration", [1.0, 2.0]),
     r"'model.calibration' is present, but the model's configuration has no such part"),
    ("unknown option", lambda h: h["options"].__setitem__("speed", 3),
     r"'options.speed' is not a field"),
    ("option type", lambda h: h["options"].__setitem__("popularity_weight", "high"),
     r"'options.popularity_weight' is 'high'"),
    ("option range", lambda h: h["options"].__setitem__("popularity_weight", 1e300),
     r"'options.popularity_weight' is invalid: popularity_weight must be a finite number in "
     r"\[0, 1000\]"),
    ("cold start count", lambda h: h["cold_start"].__setitem__("typical_count", 1e300),
     r"'cold_start.typical_count' is 1e\+300"),
    ("cold start mean", lambda h: h["cold_start"].__setitem__("global_mean", 1e300),
     r"'cold_start.global_mean' is 1e\+300, outside the rating range"),
    ("unknown field", lambda h: h.__setitem__("weights", []), r"'weights' is not a field"),
])
def test_a_header_that_disagrees_is_refused(models, tmp_path, case, edit, message):
    _, path = models["hybrid"]
    _load(edit_header(path, tmp_path / "edited.anirec", edit), message)


@pytest.mark.parametrize("case,edit,message", [
    ("calibration null", lambda h: h["model"].__setitem__("calibration", None),
     r"'model.calibration' is missing, but the model's configuration \(objective='ranking'\)"),
    ("calibration huge", lambda h: h["model"].__setitem__("calibration", [1e308, 0.0]),
     r"'model.calibration' \[1e\+308, 0.0\] is no calibration of ratings in \[1, 10\]"),
    ("calibration 'x'", lambda h: h["model"].__setitem__("calibration", ["x", 1]),
     r"'model.calibration' is \['x', 1\], expected 2 finite numbers"),
])
def test_a_ranking_model_needs_its_calibration(models, tmp_path, case, edit, message):
    _, path = models["ranking"]
    _load(edit_header(path, tmp_path / "edited.anirec", edit), message)


def test_a_hybrid_model_without_its_popularity_prior_is_refused(models, tmp_path):
    _, path = models["hybrid"]
    target = rebuild(path, tmp_path / "noprior.anirec", drop=("model.item_log_prior.npy",))
    _load(target, r"model.item_log_prior is missing, but the model's configuration "
                  r"\(popularity_prior and a ranking loss\) needs it")


def test_bias_arrays_without_a_bias_model_are_refused(models, tmp_path):
    _, path = models["hybrid"]
    header = header_of(path)
    header["model"]["config"]["biases"] = False
    header["model"].pop("bias_mean")
    _load(rebuild(path, tmp_path / "stray.anirec", header=header),
          r"'model.bias_mean' \(and the bias arrays\) is present, but")


# ---------------------------------------------------------------------------------------------
# Numbers no training produces: refused at load, naming the field


@pytest.mark.parametrize("name,change,message", [
    ("model.bias_user", lambda a: a + 1e300, r"model.bias_user must be a finite float64 "
                                            r"vector of biases within"),
    ("model.item_log_prior", lambda a: a - 1e30, r"model.item_log_prior must be a finite "
                                                r"float64 vector of log shares"),
    ("baseline.BiasModel.user_bias", lambda a: a + 1e300, r"baseline.BiasModel.user_bias holds "
                                                         r"values outside"),
    ("baseline.GlobalMean.mean", lambda a: a * 0 + 1e300, r"baseline.GlobalMean.mean holds "
                                                         r"values outside \[1, 10\]"),
    ("baseline.Popularity.item_scores", lambda a: a + 0.5, r"must count training pairs"),
    ("cold.std", lambda a: a * 0 + 1e-300, r"the deviations at least 1e-12"),
    ("model.params", lambda a: a * np.float32(1e30),
     r"overflows when embedding the saved anime and users: model.params"),
    ("user_x", lambda a: a * 1e300, r"overflows when embedding the saved anime and users: "
                                    r".*user_x"),
    ("item_x", lambda a: a * 1e300, r"overflows when embedding the saved anime and users: "
                                    r".*item_x"),
    ("cold.mean", lambda a: a * 0 + 1e300,
     r"overflows when embedding a new user from genre ratings: .*cold.mean"),
])
def test_numbers_too_large_to_use_are_refused_at_load(models, tmp_path, name, change, message):
    _, path = models["hybrid"]
    with np.errstate(all="ignore"):
        array = change(_array(path, name))
    target = rebuild(path, tmp_path / "huge.anirec", {f"{name}.npy": npy(array)})
    _load(target, message)


def _serve(rec):
    """Every kind of query, once."""
    rec.recommend(rec.user_ids[:3], n=5)
    rec.predict(rec.user_ids[:3], rec.anime_ids[:3])
    rec.similar(rec.anime_ids[0], n=5)
    rec.evaluate()
    for rating in (1, 10):
        rec.recommend_for_genres({genre: rating for genre in rec.genres}, n=3)
    rec.recommend_for_genres({}, n=3)


@pytest.mark.parametrize("name", ["model.params", "model.user_table", "model.item_table",
                                  "user_x", "item_x", "cold.mean"])
@pytest.mark.parametrize("scale", [1e20, 1e30, 3e38])
def test_a_model_that_loads_never_fails_inside_a_kernel(models, tmp_path, name, scale):
    # Huge finite numbers either overflow what queries compute, and the file is refused at
    # load naming the fields, or they do not, and every query works.
    _, path = models["hybrid"]
    with np.errstate(all="ignore"):
        array = _array(path, name)
        array = (array * 0 + 1).astype(array.dtype) * array.dtype.type(scale)
    target = rebuild(path, tmp_path / "huge.anirec", {f"{name}.npy": npy(array)})
    try:
        rec = Recommender.load(target)
    except ModelFormatError as error:
        assert "overflows" in str(error) and name.split(".")[-1].split("_")[0] in str(error)
        return
    _serve(rec)


def test_a_model_as_trained_loads_and_serves(models):
    # The control: the checks refuse none of what training produces.
    for objective, (rec, path) in models.items():
        loaded = Recommender.load(path)
        assert loaded.recommend(loaded.user_ids[:3], n=5).shape[0] == 15, objective
        _serve(loaded)
