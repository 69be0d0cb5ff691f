// The CodeBeaker playground: pick a language, edit the program, press Run; its output streams
// into an xterm.js terminal, where the person types its input. One run = one WebSocket to /ws,
// spoken in framing A of shared/spec/RUN.md. No framework, no build step.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const ui = {
    language: $("language"),
    run: $("run"),
    stop: $("stop"),
    status: $("status"),
    compile: $("compile-output"),
    filename: $("filename"),
    keyForm: $("api-key-form"),
    key: $("api-key"),
  };
  const STORED_KEY = "codebeaker.apiKey";
  const STORED_LANGUAGE = "codebeaker.language";
  const KILL_GRACE_MS = 3000; // after Stop, close the socket ourselves if no exit came
  // CodeMirror 5 mode (a MIME type of the vendored modes) per language; others: plain text.
  const MODES = {
    c: "text/x-csrc",
    cpp: "text/x-c++src",
    csharp: "text/x-csharp",
    java: "text/x-java",
    go: "text/x-go",
    python: "text/x-python",
    javascript: "text/javascript",
    typescript: "application/typescript",
  };
  const LABELS = {
    c: "C", cpp: "C++", csharp: "C#", java: "Java", go: "Go", python: "Python",
    javascript: "JavaScript", typescript: "TypeScript",
  };
  const ANSI = { red: "\x1b[31m", green: "\x1b[32m", yellow: "\x1b[33m", dim: "\x1b[2m", reset: "\x1b[0m" };

  let languages = []; // from GET /api/v1/languages
  let current = null; // the language in the editor
  const drafts = new Map(); // language name → its source as last edited
  let socket = null; // the run's WebSocket while it is open

  // ------------------------------------------------------------------ storage (may be off)

  const store = {
    get(name) {
      try { return localStorage.getItem(name) || ""; } catch { return ""; }
    },
    set(name, value) {
      try {
        if (value) localStorage.setItem(name, value); else localStorage.removeItem(name);
      } catch { /* private mode: remembered for this page only */ }
    },
  };

  // ------------------------------------------------------------------ editor

  const editor = CodeMirror.fromTextArea($("source"), {
    theme: "material-darker",
    lineNumbers: true,
    indentUnit: 4,
    tabSize: 4,
    screenReaderLabel: "Source code",
    extraKeys: { "Ctrl-Enter": () => run(), "Cmd-Enter": () => run() },
  });

  // ------------------------------------------------------------------ terminal

  const term = new Terminal({
    convertEol: true, // programs write "\n"; the terminal needs "\r\n"
    cursorBlink: true,
    scrollback: 5000,
    fontSize: 14,
    fontFamily: '"DejaVu Sans Mono", ui-monospace, Menlo, Consolas, monospace',
    theme: { background: "#16171a", foreground: "#e6e6e6", cursor: "#8bd5ff" },
  });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open($("terminal"));
  new ResizeObserver(() => requestAnimationFrame(() => fit.fit())).observe($("terminal"));

  // Everything shown in the terminal goes through one queue. The input line being typed
  // (not sent yet; the server echoes it once sent) is drawn after the output, as readline
  // does: erased before more output is written and drawn again after it. A step that is a
  // function runs once every earlier write has been parsed, so it can read where the
  // cursor is; it returns the text to write.
  const queue = [];
  let writing = false;
  let typed = ""; // the input line being typed
  let drawn = null; // where the typed line starts: {marker, row, col}, or null

  function show(...steps) {
    queue.push(...steps);
    pump();
  }

  function pump() {
    while (!writing && queue.length > 0) {
      const first = queue.shift();
      let data = typeof first === "function" ? first() : first;
      while (queue.length > 0 && typeof queue[0] === "string") data += queue.shift();
      if (data) {
        writing = true;
        term.write(data, () => {
          writing = false;
          pump();
        });
      }
    }
  }

  function toTypedStart() {
    const buffer = term.buffer.active;
    const here = buffer.baseY + buffer.cursorY;
    const { marker } = drawn;
    const row = !marker ? drawn.row : marker.isDisposed ? here : marker.line;
    const up = Math.max(0, here - row);
    return (up ? `\x1b[${up}A` : "") + `\x1b[${drawn.col + 1}G\x1b[J`;
  }

  function eraseTyped() {
    if (!drawn) return "";
    const data = toTypedStart();
    if (drawn.marker) drawn.marker.dispose();
    drawn = null;
    return data;
  }

  function redrawTyped() {
    if (!typed) return eraseTyped();
    if (drawn) return toTypedStart() + typed;
    // The marker follows its row as the terminal scrolls (there is none in the alternate
    // screen, which does not scroll back: there the row is enough).
    const buffer = term.buffer.active;
    const marker = term.registerMarker(0);
    drawn = { marker, row: buffer.baseY + buffer.cursorY, col: buffer.cursorX };
    return typed;
  }

  function write(text) {
    show(eraseTyped, text, redrawTyped);
  }

  // A line of our own (not the program's), on a line of its own.
  function note(text, color = ANSI.dim) {
    const newline = () => (term.buffer.active.cursorX > 0 ? "\r\n" : "");
    show(eraseTyped, newline, color + text + ANSI.reset + "\r\n", redrawTyped);
  }

  function terminalText() {
    const buffer = term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) {
      const line = buffer.getLine(i);
      if (!line) continue;
      const text = line.translateToString(true);
      if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += text;
      else lines.push(text);
    }
    return lines.join("\n").replace(/\s+$/, "");
  }

  function resetTerminal() {
    typed = "";
    queue.length = 0;
    show(() => {
      if (drawn && drawn.marker) drawn.marker.dispose();
      drawn = null;
      term.reset();
      return "";
    });
  }

  term.onData((data) => {
    if (!running()) return;
    if (data.startsWith("\x1b")) return; // arrows, function keys: no line editing here
    for (const ch of data) {
      if (ch === "\r" || ch === "\n") {
        send({ type: "input", data: typed + "\n" });
        typed = "";
      } else if (ch === "\x7f" || ch === "\b") {
        typed = Array.from(typed).slice(0, -1).join("");
      } else if (ch === "\x15") { // Ctrl-U: drop the line
        typed = "";
      } else if (ch === "\x04") { // Ctrl-D: send what is typed, then end the input
        if (typed) send({ type: "input", data: typed });
        typed = "";
        send({ type: "eof" });
      } else if (ch === "\x03") { // Ctrl-C
        typed = "";
        stop();
      } else if (ch >= " " || ch === "\t") {
        typed += ch;
      }
    }
    show(redrawTyped);
  });

  // ------------------------------------------------------------------ status and compiler

  function setStatus(text, tone = "") {
    ui.status.textContent = text;
    ui.status.dataset.tone = tone;
  }

  function setCompiler(tone, title, details = "") {
    ui.compile.className = tone;
    ui.compile.textContent = "";
    const heading = document.createElement("strong");
    heading.textContent = title;
    ui.compile.append(heading);
    if (details) ui.compile.append("\n" + details.replace(/\s+$/, ""));
  }

  // ------------------------------------------------------------------ running a program

  function running() {
    return socket !== null && socket.readyState === WebSocket.OPEN;
  }

  function setRunning(on) {
    document.body.classList.toggle("running", on);
    ui.run.disabled = on || current === null;
    ui.stop.disabled = !on;
    ui.language.disabled = on || languages.length === 0;
  }

  function send(message) {
    if (running()) socket.send(JSON.stringify(message));
  }

  function socketUrl() {
    const url = new URL("/ws", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const key = store.get(STORED_KEY);
    if (key) url.searchParams.set("apiKey", key);
    return url.href;
  }

  function run() {
    if (socket !== null || current === null) return;
    const language = current;
    resetTerminal();
    if (language.compiled) setCompiler("muted", "Compiling…");
    else setCompiler("muted", `${LABELS[language.name] || language.name} is not compiled.`);
    setStatus("Connecting…", "busy");

    const ws = new WebSocket(socketUrl());
    const outcome = { exited: false, failed: false, killTimer: null };
    socket = ws;
    setRunning(true);
    ws.onopen = () => {
      ws.send(JSON.stringify({
        type: "code",
        language: language.name,
        filename: language.sourceFile,
        source: editor.getValue(),
      }));
      setStatus(language.compiled ? "Compiling…" : "Running…", "busy");
      setRunning(true);
      term.focus();
    };
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      receive(message, language, outcome);
    };
    ws.onclose = (event) => {
      clearTimeout(outcome.killTimer);
      if (socket === ws) socket = null;
      typed = "";
      show(eraseTyped, "\x1b[?25l"); // no cursor once nothing reads input (reset shows it)
      setRunning(false);
      if (event.code === 1008) {
        askForKey("The server refused the run: it wants an API key.");
      } else if (!outcome.exited && !outcome.failed) {
        note(`[connection closed${event.code === 1006 ? "" : ` · ${event.code}`}]`, ANSI.yellow);
        setStatus("Connection closed before the program ended", "error");
      }
    };
  }

  function receive(message, language, outcome) {
    switch (message.type) {
      case "stdout":
      case "echo":
        write(message.data);
        break;
      case "stderr":
        write(ANSI.red + message.data + ANSI.reset);
        break;
      case "compile_success":
        setCompiler("ok", "Compiled successfully.", "");
        setStatus("Running…", "busy");
        break;
      case "compile_error":
        outcome.failed = true;
        setCompiler("error", `Compile error (exit ${message.return_code})`, message.stderr || "");
        setStatus("Compile error", "error");
        note("[compile error: see the Compiler panel]", ANSI.red);
        break;
      case "exit": {
        outcome.exited = true;
        const code = message.return_code;
        const text = `exit ${code}${message.reason ? ` · ${message.reason}` : ""}`;
        typed = "";
        note(`[${text}]`, code === 0 ? ANSI.green : ANSI.yellow);
        if (!outcome.failed) setStatus(text, code === 0 ? "ok" : "error");
        break;
      }
      case "error":
        outcome.failed = true;
        note(`[error: ${message.data}]`, ANSI.red);
        setStatus(`Error: ${message.data}`, "error");
        break;
      default:
        if (message.error && message.error.message) { // a refusal in another framing's words
          outcome.failed = true;
          setStatus(`Error: ${message.error.message}`, "error");
        }
    }
  }

  function stop() {
    const ws = socket;
    if (ws === null) return;
    if (ws.readyState !== WebSocket.OPEN) { // still connecting: nothing runs yet
      ws.close();
      return;
    }
    send({ type: "kill" });
    setStatus("Stopping…", "busy");
    setTimeout(() => { if (ws.readyState !== WebSocket.CLOSED) ws.close(); }, KILL_GRACE_MS);
  }

  // ------------------------------------------------------------------ languages

  function keyHeaders() {
    const key = store.get(STORED_KEY);
    return key ? { "X-API-Key": key } : {};
  }

  function askForKey(message) {
    ui.keyForm.hidden = false;
    ui.key.value = store.get(STORED_KEY);
    setStatus(store.get(STORED_KEY) ? "The server refused this API key." : message, "error");
    ui.key.focus();
  }

  async function loadLanguages() {
    setStatus("Loading languages…", "busy");
    let body;
    try {
      const response = await fetch("/api/v1/languages", { headers: keyHeaders() });
      if (response.status === 401 || response.status === 403) {
        askForKey("This server wants an API key.");
        return;
      }
      if (!response.ok) throw new Error(`GET /api/v1/languages answered ${response.status}`);
      body = await response.json();
    } catch (error) {
      setStatus(`Cannot load the languages: ${error.message}`, "error");
      return;
    }
    languages = body.languages || [];
    ui.language.replaceChildren(...languages.map((language) => {
      const option = document.createElement("option");
      option.value = language.name;
      option.textContent = LABELS[language.name] || language.name;
      return option;
    }));
    const names = languages.map((language) => language.name);
    const wanted = [store.get(STORED_LANGUAGE), "python", names[0]].find((name) => names.includes(name));
    if (wanted) choose(wanted);
    setRunning(false);
    setStatus("Ready", "");
  }

  function choose(name) {
    if (current) drafts.set(current.name, editor.getValue());
    current = languages.find((language) => language.name === name) || null;
    if (current === null) return;
    ui.language.value = name;
    ui.filename.textContent = current.sourceFile || "";
    editor.setOption("mode", MODES[name] || null);
    editor.setOption("indentWithTabs", name === "go");
    editor.setValue(drafts.get(name) ?? current.sample ?? "");
    editor.clearHistory();
    store.set(STORED_LANGUAGE, name);
  }

  // ------------------------------------------------------------------ wiring

  ui.language.addEventListener("change", () => choose(ui.language.value));
  ui.run.addEventListener("click", () => run());
  ui.stop.addEventListener("click", () => stop());
  ui.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    store.set(STORED_KEY, ui.key.value.trim());
    ui.keyForm.hidden = true;
    loadLanguages();
  });

  // For tests and the curious.
  window.playground = {
    editor,
    terminal: term,
    terminalText,
    run,
    stop,
    get language() { return current && current.name; },
    get ready() { return current !== null; },
  };

  fit.fit();
  loadLanguages();
})();
