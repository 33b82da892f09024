from extract.progress import Progress, duration


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_each_partition_gives_one_line_with_speed_and_time_left():
    clock = Clock()
    progress = Progress(total=4, clock=clock)
    clock.now += 30
    assert progress.finished("micro|b|step2", 3000) == (
        "extraction 1/4 partitions done (micro|b|step2): 100 tokens/s, about 1 min 30 s left"
    )
    clock.now += 10  # the second was faster: the estimate follows the mean
    assert progress.finished("micro|b|step4", 3000).endswith("150 tokens/s, about 40 s left")
    clock.now += 20
    line = progress.finished("micro|b|step8", 0, "quarantined")
    assert line.startswith("extraction 3/4 partitions quarantined (micro|b|step8)") and line.endswith("about 20 s left")
    clock.now += 20
    assert progress.finished("micro|b|step16", 3000).endswith("112 tokens/s, all done in 1 min 20 s")


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0.4, 59, 61, 3599, 3660, 90_000)] == [
        "0 s",
        "59 s",
        "1 min 01 s",
        "59 min 59 s",
        "1 h 01 min",
        "25 h 00 min",
    ]
