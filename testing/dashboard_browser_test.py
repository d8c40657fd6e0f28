#!/usr/bin/python3
"""The dashboard in a real browser, against a real cluster.

Starts two picos-node processes on loopback (2 workers each) and
dispycos_client1 with its dashboard (dashboard/dashboard.h), then drives
headless Chromium (Debian's chromium, chromium-driver, python3-selenium;
tools/setup installs them): logs in with the token from the token file,
sees both nodes appear and jobs progress, suspends and resumes a node,
opens a node's and a worker's views, terminates a running job from the
page (each confirmation accepted) and sees it end, takes screenshots of the
cluster and job-stream views, and fails on any JavaScript error in the
browser's console. Prints two figures:

  dashboard_update_latency_ms  a job ends -> the page shows it, median
  dashboard_page_bytes         everything the first load of the page fetched

Screenshots go to $TEST_UNDECLARED_OUTPUTS_DIR (or a temporary folder);
with --docs DIR also to DIR/dashboard-cluster.png and
DIR/dashboard-jobstream.png (how docs/ gets them):

  bazel run //testing:dashboard_browser_test -- --docs "$PWD/docs"

Every wait is bounded (60 s, which only a hang reaches); the test kills only
the processes it started, whatever happens. Run by /usr/bin/python3: Debian's
selenium is not seen by another python3.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

NODE = "compute/picos-node"
CLIENT = "examples/dispycos_client1"
LIBRARY = "examples/libdispycos_client2_compute.so"
LONG = 60.0
JOBS = 32


class Failure(Exception):
    pass


def wait_for(what, check, timeout=LONG, every=0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception as e:  # noqa: BLE001
            # The page re-renders as deltas arrive: an element found may be
            # replaced before it is read. Look again.
            if type(e).__name__ != "StaleElementReferenceException":
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure("timed out waiting for " + what)
        time.sleep(every)


def line_of(path, prefix):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(prefix):
                    return line.rstrip("\n")
    except FileNotFoundError:
        pass
    return None


def main():
    docs = None
    if "--docs" in sys.argv:
        docs = sys.argv[sys.argv.index("--docs") + 1]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.common.exceptions import StaleElementReferenceException
    except ImportError:
        print("FAIL: python3-selenium is missing: run tools/setup (Debian's chromium, chromium-driver, python3-selenium)")
        return 1
    for tool in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.path.exists(tool):
            print(f"FAIL: {tool} is missing: run tools/setup")
            return 1

    out = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or tempfile.mkdtemp(prefix="dashboard-shots-")
    work = tempfile.mkdtemp(prefix="dash-", dir=os.environ.get("TEST_TMPDIR"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOS_")}
    env["PICOS_REMOTE_SECRET"] = "dashboard browser test secret"
    procs = []
    driver = None
    logs = {}

    def start(name, argv):
        logs[name] = os.path.join(work, name)
        p = subprocess.Popen(argv, stdout=open(logs[name], "w"), stderr=open(logs[name] + ".err", "w"),
                             stdin=subprocess.DEVNULL, env=env)
        procs.append(p)
        return p

    try:
        uris = []
        for n in ("n1", "n2"):
            dest = os.path.join(work, "dest-" + n)
            os.mkdir(dest)
            start(n, [NODE, "--cpus=2", "--listen=tcp://127.0.0.1:0", "--dest_path=" + dest])
            line = wait_for(f"node {n} to listen", lambda: line_of(logs[n], "listening "))
            uris.append(line.split(" ", 1)[1])

        token_file = os.path.join(work, "token")
        client = start("client", [CLIENT, "--nodes=" + ",".join(uris), f"--jobs={JOBS}", "--min_ms=1500",
                                  "--max_ms=3000", "--first_ms=60000", "--linger_s=120", "--library=" + LIBRARY,
                                  "--dashboard_listen=tcp://127.0.0.1:0", "--dashboard_token_file=" + token_file])
        line = wait_for("the dashboard", lambda: line_of(logs["client"], "dispycos_client1: dashboard at "))
        url = line.split(" ")[3]
        token = wait_for("the token file", lambda: os.path.exists(token_file) and open(token_file).read().strip())

        options = Options()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,800",
                    "--disable-dev-shm-usage"):
            options.add_argument(arg)
        options.binary_location = "/usr/bin/chromium"
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.set_page_load_timeout(LONG)

        # Not logged in: the page sends to the login form.
        driver.get(url)
        wait_for("the login form", lambda: "/login" in driver.current_url)
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "login-button").click()
        wait_for("the page after login", lambda: driver.current_url.rstrip("/") == url.rstrip("/")
                 and driver.execute_script("return typeof S !== 'undefined' && S.loaded"))

        # Both nodes appear in the cluster view, with their workers.
        def nodes_shown():
            rows = driver.find_elements(By.CSS_SELECTOR, "#view tbody tr")
            return len(rows) == 2 and all(driver.find_elements(By.ID, "node-" + u) for u in uris)
        wait_for("both nodes in the cluster view", nodes_shown)
        wait_for("4 workers", lambda: driver.execute_script(
            "return Object.values(S.nodes).reduce((a, n) => a + n.workers, 0)") == 4)

        # A click on an element of the page, and the confirmation it asks.
        def click(element_id, xpath=None):
            def attempt():
                try:
                    found = (driver.find_elements(By.XPATH, xpath) if xpath
                             else driver.find_elements(By.ID, element_id))
                    if not found:
                        return False
                    found[0].click()
                    return True
                except StaleElementReferenceException:
                    return False
            wait_for(f"a click on {xpath or element_id}", attempt)

        def confirm(expected):
            alert = wait_for("the confirmation", lambda: _alert(driver))
            if expected not in alert.text:
                raise Failure("unexpected confirmation: " + alert.text)
            alert.accept()

        # Terminate the first job (it sleeps 60 s: running whatever the
        # machine's load) from a worker's page.
        job = wait_for("the first job running", lambda: driver.execute_script(
            "const r = Object.values(S.running).filter(j => j.arg === '60000');"
            "return r.length ? r[0].id : null"))
        worker = driver.execute_script(f"return S.running[{job}].worker")
        driver.get(url + "#worker/" + worker)
        # (The page re-renders as deltas arrive: click() finds a button again
        # when the one found was replaced before the click reached it.)
        click(f"terminate-{job}")
        confirm(f"Terminate job {job}")
        wait_for(f"job {job} to end as terminated on the page", lambda: driver.execute_script(
            f"return S.finished.some(j => j.id === {job} && j.outcome === 'terminated')"))
        wait_for(f"job {job} to leave the running table", lambda: not driver.find_elements(By.ID, f"job-{job}"))

        # Jobs progress: done counts grow on the page.
        driver.get(url + "#cluster")
        wait_for("the cluster view", nodes_shown)
        wait_for("jobs to finish on the page", lambda: driver.execute_script(
            "return S.finished.filter(j => j.outcome === 'done').length") >= 4)
        driver.save_screenshot(os.path.join(out, "dashboard-cluster.png"))

        # Suspend a node from the page and resume it (each confirmed).
        node_row = f"//tr[@id='node-{uris[0]}']"
        click(None, node_row + "//button[text()='Suspend']")
        confirm(f"Suspend node {uris[0]}?")
        wait_for("the node suspended on the page", lambda: driver.execute_script(
            f"return S.nodes['{uris[0]}'].state") == "suspended")
        click(None, node_row + "//button[text()='Resume']")
        confirm(f"Resume node {uris[0]}?")
        wait_for("the node resumed on the page", lambda: driver.execute_script(
            f"return S.nodes['{uris[0]}'].state") == "initialized")

        # One node's view: its two workers; one worker's view: its running jobs.
        click(None, node_row + "//a")
        wait_for("the node view", lambda: driver.find_element(By.TAG_NAME, "h2").text.startswith(f"Node {uris[0]}"))
        wait_for("its 2 workers", lambda: len(driver.find_elements(By.CSS_SELECTOR, "#view tbody tr")) == 2)
        click(None, "//tbody//a")
        wait_for("the worker view", lambda: driver.find_element(By.TAG_NAME, "h2").text.startswith("Worker tcp://"))

        # The job stream, with jobs done, running, and the terminated one.
        driver.get(url + "#stream")
        wait_for("the stream view", lambda: driver.find_elements(By.ID, "stream"))
        wait_for("more jobs done", lambda: driver.execute_script(
            "return S.finished.filter(j => j.outcome === 'done').length") >= 8)
        driver.save_screenshot(os.path.join(out, "dashboard-jobstream.png"))

        # Every other job ends; the client says one failed (the terminated one).
        wait_for("the client's summary", lambda: line_of(logs["client"], "dispycos_client1: ") and
                 line_of(logs["client"], f"dispycos_client1: {JOBS - 1} jobs done, 1 failed"), timeout=LONG * 3)
        wait_for("every job on the page", lambda: driver.execute_script(
            "return S.finished.length") == JOBS)
        progress = driver.execute_script("return S.fns['compute']")
        if progress["done"] != JOBS - 1 or progress["failed"] != 1 or progress["total"] != JOBS:
            raise Failure(f"progress of compute: {progress}")
        driver.get(url + "#progress")
        wait_for("the progress view", lambda: driver.find_elements(By.ID, "fn-compute"))
        driver.get(url + "#events")
        wait_for("the terminated job in the events", lambda: f"job {job} (compute) terminated" in
                 driver.find_element(By.ID, "view").text)

        latencies = driver.execute_script("return window.picosLatency")
        page_bytes = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return (n ? n.transferSize : 0) + performance.getEntriesByType('resource')"
            ".reduce((a, r) => a + r.transferSize, 0)")

        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        if errors:
            raise Failure("JavaScript errors in the console: " + json.dumps(errors, indent=1))
        if not latencies:
            raise Failure("the page measured no job end")
        if page_bytes <= 0 or page_bytes > 300 * 1024:
            raise Failure(f"the page fetched {page_bytes} bytes")
        print(f"dashboard_update_latency_ms: {statistics.median(latencies):.0f} ms "
              f"(max {max(latencies):.0f} ms over {len(latencies)} job ends)")
        print(f"dashboard_page_bytes: {page_bytes} bytes")
        if docs:
            for shot in ("dashboard-cluster.png", "dashboard-jobstream.png"):
                shutil.copy(os.path.join(out, shot), os.path.join(docs, shot))
            print("screenshots written to", docs)
        print("screenshots in", out)
        print("PASS")
        return 0
    except Exception as e:  # noqa: BLE001 - any failure is reported with the processes' output
        print("FAIL:", type(e).__name__, e)
        for name, path in logs.items():
            for p in (path, path + ".err"):
                if os.path.exists(p):
                    print("---", os.path.basename(p))
                    with open(p, errors="replace") as f:
                        print(f.read()[-4000:])
        return 1
    finally:
        if driver is not None:
            try:
                driver.quit()
            except Exception:  # noqa: BLE001
                pass
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait(timeout=LONG)
        shutil.rmtree(work, ignore_errors=True)


def _alert(driver):
    try:
        return driver.switch_to.alert
    except Exception:  # noqa: BLE001 - no alert yet
        return None


if __name__ == "__main__":
    sys.exit(main())
