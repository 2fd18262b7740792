"""Tutorial 6: training an exchange-correlation functional through the SCF.

A *model* maps parameters theta to a functional. Here it is B3LYP's three mixing coefficients
(``dftad.xc.models.B3LYP3``):

    E_xc = (1 - a0 - ax) E_x^LDA + a0 E_x^HF + ax E_x^B88 + (1 - ac) E_c^VWN + ac E_c^LYP,

B3LYP itself being a0 = 0.20, ax = 0.72, ac = 0.81. The data are atomization energies of small
molecules, reactions dE = 627.5 (sum_atoms E_atom - E_molecule) in kcal/mol of converged SCF
energies (Hartree), for the molecules of the shipped W4-11 set (``molecules/w4-11``). The loss
is the mean squared error of the reaction energies, (kcal/mol)^2. Its gradient dE/dtheta is
exact at each SCF's fixed point (the energy is variational in the density, so no density
response is needed); Levenberg-Marquardt steps on the errors and their Jacobian fit the three
numbers in a handful of steps.

The experiment is a controlled one: the reference values are dftad's own B3LYP atomization
energies in the same basis, and training starts from another hybrid (a0 = 0.25, ax = 0.65,
ac = 0.90). A correct gradient through the SCF and a working optimizer must then find B3LYP's
coefficients again, and the molecules held out of the fit must come out right as well.
``--w4`` fits the W4 reference values themselves instead (nonrelativistic, without zero-point
energy): in a basis as small as def2-SVP the three coefficients then also soak up the basis-set
error of the training molecules, and the held-out molecules show how little of that transfers.
``dftad train CONFIG.toml`` runs such trainings from a config file, with checkpoints, and writes
the trained functional (``functional.json``) that ``dftad energy --xc`` and PySCF use.

    python scripts/tutorial_training.py          # 5 molecules + 3 held out, def2-SVP (minutes)
    python scripts/tutorial_training.py --fast   # H2 alone, 6-31G (the tests)

Writes ``training.png`` into ``--out``: the loss per step, and the error of every molecule's
atomization energy before and after training.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from _tutorial import ROOT, parser, pyplot, save

import dftad
from dftad import train
from dftad.dataset import load_dataset

W4_11 = ROOT / "molecules" / "w4-11"
TRAIN = ("h2", "oh", "h2o", "nh3", "co")
HELD_OUT = ("ch4", "hf", "n2")
START = {"a0": 0.25, "ax": 0.65, "ac": 0.90}  # another hybrid than B3LYP


def parse_args(argv=None):
    p = parser(__doc__, "H2 alone, 6-31G, grid level 1 (the tests)")
    p.add_argument("--w4", action="store_true",
                   help="fit the W4 reference values instead of B3LYP's own energies")
    p.add_argument("--steps", type=int, default=None,
                   help="Levenberg-Marquardt steps (default 5, --fast 3)")
    return p.parse_args(argv)


def write_dataset(folder, reactions, train_names, references):
    """A dataset folder (``dftad.dataset`` format): the reactions' species (W4-11 geometries),
    the reactions with ``references`` (kcal/mol, by reaction name) and the train/test split."""
    w4 = load_dataset(W4_11)
    (folder / "species").mkdir(parents=True, exist_ok=True)
    for name in w4.species_of(reactions):
        (folder / "species" / f"{name}.xyz").write_text(
            (W4_11 / "species" / f"{name}.xyz").read_text())
    (folder / "reactions.res").write_text("".join(
        f"$tmer {{{','.join(r.species)}}}/$f  x {' '.join(map(str, r.coefficients))} "
        f"$w {float(references[r.name]):.10f}\n" for r in reactions))
    (folder / "split.txt").write_text("".join(
        f"{r.name} {'train' if r.name in train_names else 'test'}\n" for r in reactions))


def plot(losses, before, after, held_out, title, path):
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2),
                                      gridspec_kw={"width_ratios": [1, 1.4]})
    left.semilogy(range(len(losses)), losses, "o-", color="tab:blue")
    left.set_xlabel("Levenberg-Marquardt step (0: start)")
    left.set_ylabel("loss: mean squared error ((kcal/mol)$^2$)")
    left.set_title("training loss")
    left.xaxis.get_major_locator().set_params(integer=True)

    names = list(before)
    idx = np.arange(len(names))
    right.bar(idx - 0.2, [before[n] for n in names], 0.4, label="start", color="tab:gray")
    right.bar(idx + 0.2, [after[n] for n in names], 0.4, color="tab:green")
    right.plot(idx + 0.2, [after[n] for n in names], "o", color="tab:green", label="trained")
    right.axhline(0.0, color="black", lw=0.8)
    right.set_xticks(idx, names)
    if held_out:
        first = names.index(held_out[0])
        right.axvspan(first - 0.5, len(names) - 0.5, color="tab:blue", alpha=0.08,
                      label="held out (not fitted)")
    right.set_ylabel("atomization energy error (kcal/mol)")
    right.set_title("error per molecule (computed - reference)")
    right.legend()
    fig.suptitle(title)
    save(fig, path)


def main(argv=None):
    args = parse_args(argv)
    if args.fast:
        basis, grid_level, train_names, test_names = "6-31g", 1, ("h2",), ()
    else:
        basis, grid_level, train_names, test_names = "def2-svp", 2, TRAIN, HELD_OUT
    steps = args.steps or (3 if args.fast else 5)
    dftad.enable_compilation_cache()

    w4 = {r.name: r for r in load_dataset(W4_11).reactions}
    reactions = [w4[n] for n in (*train_names, *test_names)]
    with tempfile.TemporaryDirectory(prefix="dftad-tutorial-") as tmp:
        data = Path(tmp) / "data"
        cfg = train.make_config({
            "functional": {"model": "b3lyp3", "start": START},
            "data": {"path": str(data), "basis": basis, "grid_level": grid_level},
            "optimizer": {"name": "levenberg_marquardt"},
            "run": {"steps": steps, "checkpoint": str(Path(tmp) / "run"), "eval_every": 0},
        })
        references = {r.name: r.reference for r in reactions}  # W4, kcal/mol
        write_dataset(data, reactions, train_names, references)
        trainer = train.Trainer.from_config(cfg)
        truth = trainer.model.init()  # B3LYP's coefficients
        if not args.w4:  # B3LYP's own atomization energies: W4 + B3LYP's error
            errors = train.split_errors(trainer, truth, splits=("train", "test"))
            references = {n: references[n] + e for split in errors.values()
                          for n, e in split.items()}
            write_dataset(data, reactions, train_names, references)
            trainer = train.Trainer.from_config(cfg)
        theta0 = train.start_values(trainer.model, cfg["functional"])
        before = train.split_errors(trainer, theta0, splits=("train", "test"))
        state = train.run(cfg, progress=False)  # checkpoints into the temporary folder
        after = train.split_errors(trainer, state.theta, splits=("train", "test"))

    losses = np.array([np.mean(np.square(list(before["train"].values())))]
                      + [row["loss"] for row in state.rows])
    target = "W4" if args.w4 else "B3LYP's own"
    print(f"B3LYP3 fitted to {target} atomization energies of {len(train_names)} molecules, "
          f"{basis}, grid level {grid_level}; {len(test_names)} held out")
    print("theta: " + ", ".join(f"{k} {float(theta0[k]):.4f} -> {float(v):.6f} "
                                f"(B3LYP {float(truth[k]):.2f})" for k, v in state.theta.items()))
    print("loss per step ((kcal/mol)^2): " + " ".join(f"{x:.3g}" for x in losses))
    print(f"{'molecule':10s} {'start':>10s} {'trained':>10s}   (error, kcal/mol)")
    for which in ("train", "test"):
        for name, err in before[which].items():
            print(f"{name:10s} {err:10.3f} {after[which][name]:10.3f}   {which}")
        if before[which]:
            print(f"{'MAE ' + which:10s} {train.mae(before[which]):10.3f} "
                  f"{train.mae(after[which]):10.3f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "training.png"
    plot(losses, {**before["train"], **before["test"]}, {**after["train"], **after["test"]},
         test_names, f"B3LYP's (a0, ax, ac) fitted to {target} atomization energies, {basis}",
         path)
    print(f"wrote {path}")
    return {"losses": losses, "before": before, "after": after,
            "theta_start": {k: float(v) for k, v in theta0.items()},
            "theta": {k: float(v) for k, v in state.theta.items()},
            "theta_b3lyp": {k: float(v) for k, v in truth.items()}, "pictures": [path]}


if __name__ == "__main__":
    main()
