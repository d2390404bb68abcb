package readme_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// block is one fenced block of the README.
type block struct {
	line   int    // 1-based line of the opening fence
	lang   string // the fence's info string: "sh", "json", ""
	text   string // the lines between the fences
	kind   kind   // what the runner does with an sh block
	reason string // why a skipped block is skipped
	exit   int    // the status the block must end with
	expect *block // the output block right after this sh block, if any
	// needs names the local services (postgres, nats) a block runs against; without them it is
	// skipped, saying so, unless the environment requires them (see requireService).
	needs []string
}

// kind says how an sh block runs.
type kind int

const (
	script kind = iota // run with bash -euo pipefail
	skip               // not run, for the marker's reason
	server             // started in the background as the running server
)

var (
	markerRE = regexp.MustCompile(`^<!--\s*readme-test:\s*(.*?)\s*-->$`)
	exitRE   = regexp.MustCompile(`^exit ([0-9]+)$`)
	skipRE   = regexp.MustCompile(`^skip\b\s*(.*)$`)
	needsRE  = regexp.MustCompile(`^needs((?:\s+(?:postgres|nats))+)$`)
)

// parseReadme returns the README's sh blocks in order, each with its marker
// applied and the output block that follows it. A malformed marker, or one
// that is not directly before an sh block, is an error naming its line: a
// marker that silently did nothing would hide a block from the test.
func parseReadme(readme string) ([]*block, error) {
	var (
		blocks  []*block
		open    *block   // the fence being read
		body    []string // its lines
		prev    *block   // the last sh block, while nothing but prose follows it
		marker  string
		markerL int
	)
	for i, line := range strings.Split(readme, "\n") {
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if open != nil {
			if trimmed == "```" {
				open.text = strings.Join(body, "\n")
				open, body = nil, nil
				continue
			}
			body = append(body, line)
			continue
		}
		if m := markerRE.FindStringSubmatch(trimmed); m != nil {
			if marker != "" {
				return nil, fmt.Errorf("README.md:%d: readme-test marker is not directly before a ```sh block", markerL)
			}
			marker, markerL = m[1], n
			continue
		}
		if strings.HasPrefix(trimmed, "<!--") && strings.Contains(trimmed, "readme-test") {
			return nil, fmt.Errorf("README.md:%d: malformed readme-test marker %q (want <!-- readme-test: ... -->)", n, trimmed)
		}
		if lang, ok := strings.CutPrefix(trimmed, "```"); ok {
			b := &block{line: n, lang: strings.TrimSpace(lang)}
			open = b
			switch {
			case b.lang == "sh":
				if err := applyMarker(b, marker, markerL); err != nil {
					return nil, err
				}
				blocks = append(blocks, b)
				prev = b
			case marker != "":
				return nil, fmt.Errorf("README.md:%d: readme-test marker is before a ```%s block, not a ```sh block", markerL, b.lang)
			case prev != nil && (b.lang == "json" || b.lang == ""):
				prev.expect = b
				prev = nil
			default:
				prev = nil
			}
			marker = ""
			continue
		}
		if trimmed != "" && marker != "" {
			return nil, fmt.Errorf("README.md:%d: readme-test marker is not directly before a ```sh block", markerL)
		}
	}
	if open != nil {
		return nil, fmt.Errorf("README.md:%d: block is not closed", open.line)
	}
	for _, b := range blocks {
		if b.kind == script {
			if cmd := serveCommand(b.text); cmd != "" {
				return nil, fmt.Errorf("README.md:%d: %q runs until it is stopped: give it a block of its own "+
					"marked <!-- readme-test: server -->, or skip it with a reason", b.line, cmd)
			}
		}
	}
	if marker != "" {
		return nil, fmt.Errorf("README.md:%d: readme-test marker is not directly before a ```sh block", markerL)
	}
	return blocks, nil
}

func applyMarker(b *block, marker string, line int) error {
	if marker == "" {
		return nil
	}
	if m := skipRE.FindStringSubmatch(marker); m != nil {
		reason := strings.TrimSpace(strings.Trim(strings.TrimSpace(m[1]), "():"))
		if reason == "" {
			return fmt.Errorf("README.md:%d: a skip marker must say why: <!-- readme-test: skip (REASON) -->", line)
		}
		b.kind, b.reason = skip, reason
		return nil
	}
	if marker == "server" {
		b.kind = server
		return nil
	}
	if m := exitRE.FindStringSubmatch(marker); m != nil {
		b.exit, _ = strconv.Atoi(m[1])
		return nil
	}
	if m := needsRE.FindStringSubmatch(marker); m != nil {
		b.needs = strings.Fields(m[1])
		return nil
	}
	return fmt.Errorf("README.md:%d: unknown readme-test marker %q (want skip REASON, server, exit N or needs postgres|nats)", line, marker)
}

// serveRE finds a command that starts the service rather than asking it for
// help: such a command would hold an ordinary block until its timeout.
var (
	serveRE = regexp.MustCompile(`(?m)^(?:\$ )?\s*((?:go run \./cmd/tollgate|\S*\btollgate) serve\b.*)$`)
	helpRE  = regexp.MustCompile(`\s(-h|--?help)\b`)
)

// serveCommand returns the first line of text that starts a server in the foreground, or "". A server
// started in the background (the line ends with &) does not hold the block.
func serveCommand(text string) string {
	text = strings.ReplaceAll(text, "\\\n", " ") // a command continued over lines is one line
	for _, m := range serveRE.FindAllStringSubmatch(text, -1) {
		cmd := strings.TrimSpace(stripComment(m[1]))
		if !helpRE.MatchString(cmd) && !strings.HasSuffix(cmd, "&") {
			return cmd
		}
	}
	return ""
}

// step is one command of a transcript block and the output shown after it.
type step struct {
	line     int
	command  string
	expected string
}

// transcript splits a block written as "$ command" lines followed by their
// output. It returns nil for an ordinary script.
func (b *block) transcript() []step {
	lines := strings.Split(b.text, "\n")
	var steps []step
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			s := step{line: b.line + 1 + i, command: cmd}
			for strings.HasSuffix(s.command, `\`) && i+1 < len(lines) {
				i++
				s.command += "\n" + lines[i]
			}
			steps = append(steps, s)
			continue
		}
		if len(steps) == 0 {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil // a script: its first line is not a prompt
		}
		steps[len(steps)-1].expected += line + "\n"
	}
	return steps
}

// serverCommand is the one command of a server block, without its trailing
// comment and with continuation lines joined, so flags can be appended.
func (b *block) serverCommand() (string, error) {
	var parts []string
	for _, line := range strings.Split(b.text, "\n") {
		line = strings.TrimSpace(stripComment(line))
		if line == "" {
			continue
		}
		parts = append(parts, strings.TrimSpace(strings.TrimSuffix(line, `\`)))
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("README.md:%d: server block has no command", b.line)
	}
	cmd := strings.Join(parts, " ")
	if strings.ContainsAny(cmd, ";&|") {
		return "", fmt.Errorf("README.md:%d: server block must be one command, got %q", b.line, cmd)
	}
	return cmd, nil
}

// stripComment drops a shell comment: a # that starts a word outside quotes.
func stripComment(line string) string {
	var quote rune
	prevSpace := true
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && prevSpace:
			return line[:i]
		}
		prevSpace = r == ' ' || r == '\t'
	}
	return line
}

// outcomeRE finds what an expected-output block is checked by: effects, reason
// codes, replay flags, gRPC status names, bundle refusal reasons and the positions of input
// errors ("line 9, column 1").
var outcomeRE = regexp.MustCompile(`"(effect|code|replay)":\s*"?([A-Za-z0-9_.]+)"?` +
	`|\b(InvalidArgument|NotFound|AlreadyExists|PermissionDenied|ResourceExhausted|FailedPrecondition|Unavailable|Unauthenticated|DeadlineExceeded)\b` +
	`|\b(refused_[a-z_]+)\b` +
	`|\b((?:line [0-9]+, )?column [0-9]+)\b`)

// outcomes lists the checked facts of text in order.
func outcomes(text string) []string {
	var out []string
	for _, m := range outcomeRE.FindAllStringSubmatch(text, -1) {
		switch {
		case m[1] != "":
			out = append(out, m[1]+" "+m[2])
		case m[3] != "":
			out = append(out, "status "+m[3])
		case m[4] != "":
			out = append(out, "refusal "+m[4])
		default:
			out = append(out, "position "+m[5])
		}
	}
	return out
}

// missingOutcome returns the first expected outcome that the actual output
// does not show in order, or "".
func missingOutcome(expected, actual string) string {
	got := outcomes(actual)
	for _, want := range outcomes(expected) {
		i := indexOf(got, want)
		if i < 0 {
			return want
		}
		got = got[i+1:]
	}
	return ""
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
