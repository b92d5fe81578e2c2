"""What the registry refuses when a plugin registers a component, and how a hook that returns instead of
registering is reported: each caught when the plugin loads, not later in a recipe that never mentions it."""

from __future__ import annotations

import types

import attrs
import pytest

from fmcore import FmError, GaussianPath, Sampler, SamplerOptions, help_field, hookimpl, positive
from fmcore.plugins.loading import PluginHost
from fmcore.plugins.registry import check_component


class Good(Sampler):
    """A correct sampler."""

    def step(self, field, x, t, t_next, noise):
        return x


@attrs.define(kw_only=True)
class BadDefault(SamplerOptions):
    width: float = help_field(-1.0, "a width", validator=positive)


@attrs.define(kw_only=True)
class WrongType(SamplerOptions):
    width: int = help_field(0.5, "a width")


@attrs.define(kw_only=True)
class NotSamplerOptions:
    width: int = help_field(1, "a width")


def sampler_with(options: type) -> type:
    return type("Custom", (Good,), {"Options": options})


@pytest.mark.parametrize(("cls", "expected"), [
    (sampler_with(BadDefault), "the defaults of its options class BadDefault fail its own checks: width = -1.0: "
                               "expected a finite number > 0"),
    (sampler_with(WrongType), "option width of WrongType defaults to 0.5, which is not an integer"),
    (sampler_with(NotSamplerOptions), "its options class NotSamplerOptions does not derive from "
                                      "fmcore.SamplerOptions"),
    (type("Lower", (Good,), {"options": NotSamplerOptions}), "sets `options = NotSamplerOptions`; the options "
                                                             "class attribute is spelled `Options`"),
    (type("Abstract", (Sampler,), {}), "which is abstract (it does not implement step)"),
    (GaussianPath, "is not a subclass of fmcore.Sampler"),
])
def test_registration_refuses_what_would_fail_later(cls, expected):
    with pytest.raises(FmError, match="my-pkg registers sampler 'x'") as info:
        check_component("sampler", "x", cls, "my-pkg")
    assert expected in str(info.value)


def test_a_correct_component_registers():
    check_component("sampler", "x", Good, "my-pkg")


def test_a_hook_that_returns_instead_of_registering_is_reported():
    @hookimpl
    def register_samplers(register):
        return {"mine": Good}

    host = PluginHost(entry_points=False)
    host.register(types.SimpleNamespace(register_samplers=register_samplers), "returner", "returner-pkg")
    host.registry()
    error = host.records["returner"].error
    assert error.startswith("hook register_samplers returned {'mine': <class ") and error.endswith(
        "Good'>} instead of calling register(name, cls) for each sampler; fmcore ignores return values")


def test_a_bad_registration_breaks_only_its_plugin(fm):
    @hookimpl
    def register_samplers(register):
        register("custom", sampler_with(BadDefault))

    host = PluginHost()
    host.register(types.SimpleNamespace(register_samplers=register_samplers), "baddefault", "bad-pkg")
    code, out, err = fm("plugins", host=host)
    assert code == 0
    assert "broken plugins:\n  baddefault (bad-pkg ): hook register_samplers raised: FmError: bad-pkg registers " \
           "sampler 'custom': the defaults of its options class BadDefault fail its own checks" in out
    assert "euler" in out


def test_python_choice_takes_a_kind_or_a_table_and_names_an_unknown_kind():
    import fmcore

    assert fmcore.choice("data", "moons").kind == "dataset"
    with pytest.raises(FmError, match="unknown component kind 'grids' \\(did you mean 'grid'\\?\\)"):
        fmcore.choice("grids", "uniform")
