#!/usr/bin/env python3
"""Random client data through lso's YAML (tests/yaml-tool), read back with PyYAML.

yaml-roundtrip.py TOOL [SEED]: prints mismatches, then "N passed, M failed".
- JSON values (nasty strings as keys and values, numbers, nesting): the YAML
  must load to what Python's json gives cJSON's text of the same value, every
  string tagged !unsafe, nothing else tagged.
- ini variable values: a value lso converts must be what Ansible's ini plugin
  makes of it (ast.literal_eval, else the text); a refusal is allowed.
"""
import ast
import json
import random
import subprocess
import sys
import warnings

import yaml

warnings.simplefilter("ignore", SyntaxWarning)


class Unsafe(str):
    pass


class Loader(yaml.SafeLoader):
    pass


Loader.add_constructor("!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node)))

tool = sys.argv[1]
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
passed = failed = 0


def verdict(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what[:600])


def run(mode, records):
    data = b"".join(r.encode("utf-8") + b"\0" for r in records)
    out = subprocess.run([tool, mode], input=data, capture_output=True, check=True).stdout
    return [a.decode("utf-8") for a in out.split(b"\0")[:-1]]


PIECES = ['"', "\\", "\\\\", '\\"', "\n", "\r\n", "\t", "\x01", "\x1f", "\x7f", "\x85",
          "\u2028", "\u2029", "\ufeff", "\u00e9", "\U0001f600", "{{ x }}", "{% if %}", "!unsafe",
          "!!python/object:os.system", "? ", ": ", "- ", "#", "&a", "*a", "|", ">", "'", ",",
          "[", "]", "{", "}", "%", "@", "`", " ", "---", "...", "0", "1e3", "true", "null", "~"]


def nasty_string():
    s = "".join(rng.choice(PIECES) if rng.random() < 0.7 else chr(rng.randint(1, 0x10FFFF))
                for _ in range(rng.randint(0, 12)))
    s = "".join(c for c in s if not 0xD800 <= ord(c) <= 0xDFFF)
    return s * rng.choice([1, 1, 1, 200])  # some past YAML's 1024-character key limit


def nasty_value(depth=0):
    kind = rng.randint(0, 9 if depth < 4 else 5)
    if kind <= 2:
        return nasty_string()
    if kind == 3:
        return rng.choice([0, -1, 2**31, 2**53 + 1, 10**30, rng.randint(-10**9, 10**9)])
    if kind == 4:
        return rng.choice([0.5, -2.5e-10, 1e300, 3.0, rng.uniform(-1e6, 1e6)])
    if kind == 5:
        return rng.choice([True, False, None])
    if kind <= 7:
        return [nasty_value(depth + 1) for _ in range(rng.randint(0, 4))]
    return {nasty_string(): nasty_value(depth + 1) for _ in range(rng.randint(0, 4))}


def same(expected, got):
    """Equal, of the same type; strings (only strings) tagged !unsafe."""
    if isinstance(expected, str):
        return isinstance(got, Unsafe) and str(got) == expected
    if isinstance(expected, dict):
        return (isinstance(got, dict) and len(got) == len(expected) and
                all(isinstance(k, Unsafe) for k in got) and
                all(same(v, got.get(k)) for k, v in expected.items()))
    if isinstance(expected, list):
        return (isinstance(got, list) and len(got) == len(expected) and
                all(same(e, g) for e, g in zip(expected, got)))
    return type(expected) is type(got) and expected == got


def test_json(count):
    values = [{nasty_string(): nasty_value() for _ in range(rng.randint(1, 5))} for _ in range(count)]
    texts = [json.dumps(v, ensure_ascii=rng.random() < 0.5) for v in values]
    for value, text, answer in zip(values, texts, run("json", texts)):
        cjson_text, _, yaml_text = answer.partition("\n")
        try:
            got = yaml.load(yaml_text, Loader=Loader)
        except yaml.YAMLError as e:
            verdict(False, "YAML error %s for %r" % (e, text))
            continue
        verdict(same(json.loads(cjson_text), got), "json %r -> yaml %r" % (text, yaml_text))
        verdict(json.loads(cjson_text).keys() == value.keys(), "keys of %r" % text)


VALUE_ALPHABET = "0123456789.eEjxob_+-, ()[]{}'\"#aTrueFalsNn:/\\é"


def ini_plugin_value(v):
    try:
        return ast.literal_eval(v), True
    except (ValueError, SyntaxError):
        return v, True
    except Exception:  # Ansible fails on these (TypeError, MemoryError...)
        return None, False


def test_ini(count):
    values = ["".join(rng.choice(VALUE_ALPHABET) for _ in range(rng.randint(0, 8)))
              for _ in range(count)]
    records = ["[g]\nh\n[g:vars]\nx=%s\n" % v for v in values]
    converted = 0
    for v, answer in zip(values, run("ini", records)):
        if answer.startswith("REFUSED: "):
            continue
        want, parsed = ini_plugin_value(v.strip())
        if not parsed:
            continue
        converted += 1
        try:
            got = yaml.load(answer, Loader=Loader)["g"]["vars"]["x"]
        except (yaml.YAMLError, KeyError, TypeError) as e:
            verdict(False, "ini value %r: %s in %r" % (v, e, answer))
            continue
        verdict(same(want, got) if isinstance(want, str) else
                (type(want) is type(got) and want == got), "ini value %r: %r, lso %r" % (v, want, got))
    verdict(converted > count // 2, "only %d of %d ini values converted" % (converted, count))


test_json(300)
test_ini(3000)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
