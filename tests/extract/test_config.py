import tomllib

import pytest

from extract.config import REPO_ROOT, ConfigError, load_settings, parse_settings


def test_repository_config_parses_to_the_defaults(tmp_path):
    settings = load_settings(REPO_ROOT / "seedconv.toml", tmp_path)
    assert settings.eval.n_tokens == 5000
    assert [size.name for size in settings.mini.sizes] == ["s", "m", "l"]
    assert settings.mini.seeds == (1, 2, 3, 4, 5)
    assert [s.name for s in settings.all_suites] == ["mini", "mini-mlm"]
    assert settings.suite("mini-mlm").path == tmp_path / "suites" / "mini-mlm"
    assert settings.blimp.pairs_per_paradigm == 20 and settings.blimp.source.endswith("blimp_slim.jsonl.gz")
    assert settings.suite("mini").path == tmp_path / "suites" / "mini"
    assert settings.paths.lake == tmp_path / "lake"
    assert settings.extraction.dtype == "float32"  # fp32 on every device unless asked otherwise
    assert not settings.cluster.distributed  # one machine unless a scheduler is named


HUB = '[[suites]]\nname = "p"\nkind = "hub"\nsizes = ["160m"]\nseeds = [0, 1]\n'


@pytest.mark.parametrize(
    "document, message",
    [
        ("[eval]\nn_tokens = 0", "eval.n_tokens"),
        ("[eval]\ntop_k = -1", "eval.top_k"),
        ("[eval]\nwindow = 'long'", "eval.window"),
        ("[eval]\nbogus = 1", "unknown keys in \\[eval\\]"),
        ('[cluster]\nscheduler = "node1:8786"', "cluster.scheduler must be an address"),
        ("[cluster]\npartitions_per_run = 0", "cluster.partitions_per_run"),
        ("[cluster]\nworkers = 0", "cluster.workers"),
        ("[mini]\nseeds = [1]", "at least two seeds"),
        ("[mini]\nseeds = [1, 1]", "duplicates"),
        ("[mini.sizes.x]\nhidden_size = 30\nnum_layers = 1\nnum_heads = 4", "not divisible"),
        ('[[suites]]\nname = "p"\nkind = "ftp"', "kind must be"),
        ('[[suites]]\nname = "p"\nkind = "local"', "needs a path"),
        ('[[suites]]\nname = "p"\nkind = "hub"\nsizes = ["70m"]\nseeds = [1]', "at least two seeds"),
        ('[[suites]]\nname = "a|b"\nkind = "local"\npath = "x"', "may not contain"),
        ('[[suites]]\nname = "mini"\nkind = "local"\npath = "x"', "unique"),
        ('[[suites]]\nname = "mini-mlm"\nkind = "local"\npath = "x"', "unique"),
        ('[[suites]]\nname = "mb"\nkind = "multibert"\nseeds = [0, 1]\nsizes = ["large"]', "one size"),
        (HUB + 'repo_pattern = "poly-pythia"', r"suites\.p\.repo_pattern: 'poly-pythia' is neither a built-in"),
        (HUB + 'repo_pattern = "EleutherAI/pythia-{size}"', r"'EleutherAI/pythia-\{size\}' is neither a built-in"),
        (HUB + 'repo_pattern = "me/{size}-{seed}-{step}"', r"names \['step'\]"),
        (HUB + 'repo_pattern = "me/{seed"', "not a valid pattern"),
        (HUB + "repo_pattern = 3", "repo_pattern: must be a built-in pattern"),
        ('[[suites]]\nname = "p"\nkind = "local"\npath = "x"\nrepo_pattern = "data-seed"', "is for hub suites"),
        (HUB + "cache_budget_gb = 0", r"suites\.p\.cache_budget_gb must be a number of gigabytes above 0"),
        (HUB + 'cache_budget_gb = "10G"', "cache_budget_gb must be a number"),
        ('[[suites]]\nname = "p"\nkind = "local"\npath = "x"\ncache_budget_gb = 5', "not local ones"),
        ("[blimp]\npairs_per_paradigm = 0", "blimp.pairs_per_paradigm"),
        ("[blimp]\nappend_eos = 1", "blimp.append_eos"),
        ('[blimp]\nparadigms = ["a", "a"]', "blimp.paradigms has duplicates"),
        ('[blimp]\nsource = ""', "blimp.source"),
        ("[eval]\nbatch_masked = 0", "eval.batch_masked"),
        ("[mini_mlm]\nseeds = [3]", "mini_mlm.seeds needs at least two"),
        ("[eval]\nwindow = 8\nstride = 9", r"eval.stride \(9\) is larger than eval.window \(8\)"),
        ("[eval]\nstride = 0", "eval.stride"),
        ('[eval]\ncorpus = ""', "eval.corpus must be a non-empty string"),
        ("[eval]\nsample_seed = -1", "eval.sample_seed"),
        ('[[suites]]\nname = "p"\nkind = "local"\npath = "x"\n[suites.eval]\nstride = 999', "eval.stride"),
        ('[[suites]]\nname = "p"\nkind = "local"\npath = "x"\n[suites.eval]\nbogus = 1', "suites.p.eval"),
        ('[extraction]\ndtype = "auto"', 'no longer accepted.*dtype = "float32"'),
        ('[extraction]\ndtype = "float16"', "extraction.dtype must be one of float32, tf32, bfloat16"),
        (HUB + "final_step = 143000", r"suites\.p\.final_step is for local suites; a hub suite's is its last step"),
        ('[[suites]]\nname = "p"\nkind = "local"\npath = "x"\nfinal_step = -1', r"suites\.p\.final_step must be"),
        ("[bootstrap]\nn_boot = 10", "bootstrap.n_boot"),
        ("[bootstrap]\nlevel = 95", r"bootstrap.level must be in \[0.5, 1\)"),
        ('[bootstrap]\nunit = "token"', "bootstrap.unit must be one of"),
        ("[bootstrap]\nreplicates = 9", r"unknown keys in \[bootstrap\]"),
    ],
)
def test_bad_settings_are_named(tmp_path, document, message):
    with pytest.raises(ConfigError, match=message):
        parse_settings(tomllib.loads(document), tmp_path)


@pytest.mark.parametrize("dtype", ["float32", "tf32", "bfloat16"])
def test_forward_precisions_are_accepted(tmp_path, dtype):
    assert parse_settings(tomllib.loads(f'[extraction]\ndtype = "{dtype}"'), tmp_path).extraction.dtype == dtype
    assert parse_settings({}, tmp_path).extraction.dtype == "float32"


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml", tmp_path)
    broken = tmp_path / "broken.toml"
    broken.write_text("[eval\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, tmp_path)


def test_hub_suite_entry(tmp_path):
    settings = parse_settings(
        tomllib.loads('[[suites]]\nname = "polypythia"\nkind = "hub"\nsizes = ["14m"]\nseeds = [0, 1]'), tmp_path
    )
    hub = settings.suite("polypythia")
    assert (hub.kind, hub.sizes, hub.seeds) == ("hub", ("14m",), (0, 1))
    assert hub.repo_pattern is None and hub.cache_budget_bytes is None


def test_the_papers_polypythia_preset_in_seedconv_toml_parses_as_documented(tmp_path):
    """The commented suite `polypythia-paper` of seedconv.toml, uncommented, is the paper's setting."""
    lines = (REPO_ROOT / "seedconv.toml").read_text().splitlines()
    start = lines.index('# name = "polypythia-paper"') - 1
    block = []
    for line in lines[start:]:
        if line.strip() == "#":
            break
        block.append(line.removeprefix("# "))
    settings = parse_settings(tomllib.loads("\n".join(block)), tmp_path)
    suite = settings.suite("polypythia-paper")
    assert suite.sizes == ("14m", "31m", "70m", "160m", "410m") and suite.seeds == tuple(range(10))
    assert suite.steps == (0, *(2**i for i in range(10)), *(1000 * 2**i for i in range(8)))
    config = settings.eval_for("polypythia-paper")
    assert (config.n_tokens, config.window, config.stride, config.sample_seed) == (4662, 2048, 1024, 0)
    assert config.corpus == "/data/pile/val.jsonl" and config.unigram.endswith("train_unigram.parquet")
    assert settings.eval_for("mini") == settings.eval  # the other suites keep [eval]


def test_hub_suite_repo_pattern_and_cache_budget(tmp_path):
    from extract.sources.suites import open_suite

    document = HUB + 'repo_pattern = "weight-seed"\ncache_budget_gb = 2.5\n'
    hub = parse_settings(tomllib.loads(document), tmp_path).suite("p")
    assert (hub.repo_pattern, hub.cache_budget_bytes) == ("weight-seed", 2_500_000_000)
    suite = open_suite(hub)
    assert suite.repo_id("160m", 2) == "EleutherAI/pythia-160m-weight-seed2"
    assert suite.cache_budget_bytes == 2_500_000_000


def test_final_steps_of_the_mini_and_local_suites(tmp_path):
    """A mini suite's final step is its `steps`; a local suite's what it configures, or None."""
    document = '[mini]\nsteps = 64\n[[suites]]\nname = "runs"\nkind = "local"\npath = "x"\nfinal_step = 2000\n'
    document += '[[suites]]\nname = "open"\nkind = "local"\npath = "y"\n'
    settings = parse_settings(tomllib.loads(document), tmp_path)
    assert settings.suite("mini").final_step == 64
    assert settings.suite("mini-mlm").final_step == settings.mini_mlm.steps
    assert settings.suite("runs").final_step == 2000
    assert settings.suite("open").final_step is None
