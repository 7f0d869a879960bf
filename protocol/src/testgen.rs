//! A small deterministic generator of JSON text for the scanner's differential tests: random
//! values with random whitespace and escapes, mostly valid, with a share of the mistakes a
//! JSON reader must reject (bad numbers, escapes, control characters, lone surrogates,
//! trailing commas), and byte mutations of whole frames.

/// xorshift64*: deterministic, no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// True about once in `n` calls.
    pub(crate) fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// JSON text generator; `bad` is the odds (one in `bad`) of emitting a mistake per token.
pub(crate) struct Gen {
    pub(crate) rng: Rng,
    pub(crate) bad: usize,
}

impl Gen {
    pub(crate) fn new(seed: u64, bad: usize) -> Gen {
        Gen {
            rng: Rng::new(seed),
            bad,
        }
    }

    fn mistake(&mut self) -> bool {
        self.rng.one_in(self.bad)
    }

    /// Whitespace between tokens, usually none.
    pub(crate) fn ws(&mut self, out: &mut String) {
        if self.rng.one_in(3) {
            out.push_str(self.rng.pick(&[" ", "\n", "\t", "\r\n  ", " \t"]));
        }
    }

    /// A string literal with escapes, multi-byte characters and surrogates (paired in
    /// valid text; lone ones are valid JSON to `ignore_value` but not to `parse_str`).
    pub(crate) fn string(&mut self, out: &mut String) {
        out.push('"');
        for _ in 0..self.rng.below(6) {
            let piece = if self.mistake() {
                self.rng.pick(&[
                    "\\x", "\\u12G4", "\\u12", "\u{1}", "\n", "\t", "\u{1f}", "\\", "\\U0041",
                ])
            } else {
                self.rng.pick(&[
                    "a",
                    "realtime:room",
                    "é",
                    "😀",
                    "\u{7f}",
                    "\\n",
                    "\\\"",
                    "\\\\",
                    "\\/",
                    "\\b\\f\\r\\t",
                    "\\u00e9",
                    "\\u0000",
                    "\\ud83d\\ude00",
                    "\\uD83D\\uDE00",
                    "\\ud800",
                    "\\udc00",
                    "\\ud800\\u0041",
                    "\\ud800\\ud800",
                    "\\ud800\\n",
                    "\\ud800x",
                    "xxxxxxxxxxxxxxxxxxxxxxxx",
                ])
            };
            out.push_str(piece);
        }
        out.push('"');
    }

    pub(crate) fn number(&mut self, out: &mut String) {
        let n = if self.mistake() {
            self.rng.pick(&[
                "01", "1.", ".5", "-", "1e", "1e+", "-01", "+1", "0x1", "NaN", "Infinity", "1.e5",
                "--1", "00",
            ])
        } else {
            self.rng.pick(&[
                "0",
                "-0",
                "1.5e+10",
                "123",
                "-12.5E-3",
                "1e400",
                "-1e-400",
                "0.000",
                "9007199254740993",
                "123456789012345678901234567890",
                "1E2",
                "2e-0",
            ])
        };
        out.push_str(n);
    }

    /// Any JSON value, nested at most `depth` more levels.
    pub(crate) fn value(&mut self, depth: usize, out: &mut String) {
        let kinds = if depth == 0 { 3 } else { 5 };
        match self.rng.below(kinds) {
            0 => self.string(out),
            1 => self.number(out),
            2 => {
                let lit = if self.mistake() {
                    self.rng
                        .pick(&["nul", "tru", "fals", "nulll", "True", "undefined"])
                } else {
                    self.rng.pick(&["null", "true", "false"])
                };
                out.push_str(lit);
            }
            3 => self.container(depth, false, out),
            _ => self.container(depth, true, out),
        }
    }

    fn container(&mut self, depth: usize, object: bool, out: &mut String) {
        let (open, close) = if object { ('{', '}') } else { ('[', ']') };
        out.push(open);
        self.ws(out);
        let n = self.rng.below(4);
        for k in 0..n {
            if k > 0 {
                self.ws(out);
                out.push(',');
                self.ws(out);
            }
            if object {
                if self.mistake() {
                    self.value(0, out); // a key that may not be a string
                } else {
                    self.string(out);
                }
                self.ws(out);
                if !self.mistake() {
                    out.push(':');
                }
                self.ws(out);
            }
            self.value(depth - 1, out);
        }
        self.ws(out);
        if n > 0 && self.mistake() {
            out.push(',');
        }
        let close = if self.mistake() {
            [']', '}'][self.rng.below(2)]
        } else {
            close
        };
        out.push(close);
    }

    /// A frame shaped like a fan-out broadcast, with variations in every place the decoder
    /// looks at (head, event, body keys and their values, extra elements, trailing text).
    pub(crate) fn frame(&mut self) -> String {
        let mut out = String::from(if self.rng.one_in(20) {
            self.rng.pick(&[
                "[null, null,",
                "[\"1\",null,",
                " [null,null,",
                "[null,null, ",
            ])
        } else {
            "[null,null,"
        });
        if self.rng.one_in(30) {
            self.value(1, &mut out); // a topic that may not be a string
        } else {
            self.string(&mut out);
        }
        self.ws(&mut out);
        out.push(',');
        self.ws(&mut out);
        match self.rng.below(12) {
            0 => self.value(1, &mut out),
            1 => out.push_str("\"broadc\\u0061st\""),
            2 => out.push_str("\"presence_diff\""),
            _ => out.push_str("\"broadcast\""),
        }
        self.ws(&mut out);
        if !self.rng.one_in(30) {
            out.push(',');
            self.ws(&mut out);
            if self.rng.one_in(15) {
                self.value(2, &mut out);
            } else {
                self.body(&mut out);
            }
        }
        for _ in 0..[0, 0, 0, 1, 2][self.rng.below(5)] {
            self.ws(&mut out);
            out.push(',');
            self.ws(&mut out);
            self.value(2, &mut out);
        }
        self.ws(&mut out);
        out.push(']');
        if self.rng.one_in(4) {
            self.ws(&mut out);
        }
        if self.mistake() {
            out.push_str(self.rng.pick(&["x", "]", ",", "{}"]));
        }
        out
    }

    fn body(&mut self, out: &mut String) {
        out.push('{');
        self.ws(out);
        let n = self.rng.below(5);
        for k in 0..n {
            if k > 0 {
                out.push(',');
                self.ws(out);
            }
            let key = self.rng.pick(&[
                "\"type\"",
                "\"event\"",
                "\"event\"",
                "\"payload\"",
                "\"payload\"",
                "\"meta\"",
                "\"other\"",
                "\"\\u0065vent\"",
                "\"pay\\u006coad\"",
                "\"event\\ud800\"",
                "\"events\"",
                "\"metadata\"",
                "\"typ\"",
            ]);
            out.push_str(key);
            self.ws(out);
            out.push(':');
            self.ws(out);
            if key.contains("event") && !self.rng.one_in(6) {
                self.string(out);
            } else {
                self.value(3, out);
            }
            self.ws(out);
        }
        if n > 0 && self.mistake() {
            out.push(',');
        }
        out.push('}');
    }

    /// `text` with one to three random single-byte edits (replace, insert, delete) from
    /// the bytes JSON syntax turns on; `None` when an edit broke UTF-8.
    pub(crate) fn mutate(&mut self, text: &str) -> Option<String> {
        const BYTES: &[u8] = b"\"\\{}[],: 0123456789-+.eEnulltrfasu\n\t\x01\x7f";
        let mut b = text.as_bytes().to_vec();
        for _ in 0..1 + self.rng.below(3) {
            let at = self.rng.below(b.len() + 1);
            let byte = BYTES[self.rng.below(BYTES.len())];
            match self.rng.below(3) {
                0 if at < b.len() => b[at] = byte,
                1 if at < b.len() => {
                    b.remove(at);
                }
                _ => b.insert(at, byte),
            }
        }
        String::from_utf8(b).ok()
    }
}
