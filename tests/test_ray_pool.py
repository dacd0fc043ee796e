"""The Ray driver's classifier workers (a fake Ray: the policy, not Ray itself)."""

from __future__ import annotations

from jointaug.experiments.ray_executor import _Pool


class FakeActor:
    def __init__(self, log, opts):
        self.log, self.opts, self.n = log, opts, 0
        outer = self

        class Run:
            def remote(self, path, task):
                outer.n += 1
                return (id(outer), task)

        self.run = Run()


class FakeRay:
    def __init__(self):
        self.started, self.killed = [], []
        ray = self

        class Cls:
            def options(self, **opts):
                class Maker:
                    def remote(self):
                        a = FakeActor(ray, opts)
                        ray.started.append(a)
                        return a

                return Maker()

        self.cls = Cls()

    def remote(self, cls):
        return self.cls

    def kill(self, actor):
        self.killed.append(actor)


def test_workers_are_reused_while_trainings_are_ready_and_stopped_when_idle():
    ray = FakeRay()
    pool = _Pool(ray, retries=2, resources={"GPU": 1.0, "CPU": 2.0})
    opts = {"num_cpus": 1, "num_gpus": 0.25}
    r1, r2 = pool.submit(opts, "run", "a"), pool.submit(opts, "run", "b")
    assert len(ray.started) == 2 and ray.started[0].opts["max_restarts"] == 2
    assert ray.started[0].opts["num_gpus"] == 0.25
    pool.release(r1, ok=True)
    pool.submit(opts, "run", "c")  # the freed worker trains the next one: no new process
    assert len(ray.started) == 2 and ray.started[0].n == 2
    pool.release(r2, ok=False)  # died more often than retries: stopped, never reused
    assert ray.killed == [ray.started[1]]
    pool.stop_idle()  # nothing idle
    assert len(ray.killed) == 1


def test_no_more_workers_than_the_cluster_holds():
    ray = FakeRay()
    pool = _Pool(ray, retries=0, resources={"CPU": 2.0})
    opts = {"num_cpus": 1, "num_gpus": 0}
    assert pool.capacity(opts) == 2
    assert pool.capacity({"num_cpus": 1, "num_gpus": 0.25}) == 1  # no GPU: at least one
    r1 = pool.submit(opts, "run", "a")
    pool.submit(opts, "run", "b")
    assert pool.submit(opts, "run", "c") is None  # waits in the driver
    pool.release(r1, ok=True)
    assert pool.submit(opts, "run", "c") is not None and len(ray.started) == 2
    assert _Pool(ray, 0, {"GPU": 2.0}).capacity({"num_cpus": 1, "num_gpus": 0.25}) == 8
