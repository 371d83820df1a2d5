package swarm

// The listings the agent reads every evaluation (nodes and tasks) are the
// Engine API's biggest answers: in a swarm of 5,000 nodes and 100,000
// tasks, some 10 MB of nodes and 200 MB of tasks, of which the agent
// reads a few fields (a task's ids, states, reservations and constraints;
// not its container spec, network attachments or container status, which
// are nine tenths of its bytes). Decoding them whole into the Docker
// client's types cost 2.7 s of CPU and 1.1 GB of heap per evaluation at
// that size (BenchmarkEvaluate5000Nodes); encoding/json into a trimmed
// struct still scans every byte twice and reads the whole answer into
// memory first.
//
// So these two listings are read here, by a small reader of our own: it
// streams the answer's array one element at a time (at most one element
// and a read buffer in memory), finds each element's end by skipping
// strings with bytes.IndexByte, and decodes only the fields asked for,
// leaving every other value unread. It is exact on what the daemon sends
// (encoding/json's output: exact key case, no duplicate keys); it checks
// the structure it walks (brackets, commas, colons, quotes) and reports
// malformed input as an error with its byte offset, but does not validate
// the inside of the values it skips.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// list GETs an Engine API listing (path such as "/tasks") with filters,
// through the client's transport and deadlines, and calls f with each
// element of the array it answers. The API version is the one the Docker
// client negotiated (it pings the engine first if it has not yet).
func (c *Client) list(ctx context.Context, path string, f filters.Args, each func(elem []byte) error) error {
	if !c.negotiated.Load() {
		ping, err := c.api.Ping(ctx)
		if err != nil {
			return err
		}
		c.api.NegotiateAPIVersionPing(ping)
		c.negotiated.Store(true)
	}
	q := url.Values{}
	if f.Len() > 0 {
		js, err := filters.ToJSON(f)
		if err != nil {
			return err
		}
		q.Set("filters", js)
	}
	u := url.URL{Scheme: "http", Host: client.DummyHost, Path: "/v" + strings.TrimPrefix(c.api.ClientVersion(), "v") + path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The daemon's error shape, as the Docker client reports it.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct{ Message string }
		if json.Unmarshal(body, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(resp.Status + " " + string(body))
		}
		return fmt.Errorf("Error response from daemon: %s", e.Message) //nolint:staticcheck // the Docker client's words
	}
	return eachElement(resp.Body, each)
}

// managerHost is the host of a manager's address (host:port).
func managerHost(addr string) (string, bool) {
	host, _, err := net.SplitHostPort(addr)
	return host, err == nil
}

// errIncomplete is a value that runs past the end of the bytes held:
// more must be read.
var errIncomplete = errors.New("incomplete")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errIncomplete
		}
		q := j + k
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errIncomplete
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errIncomplete
	default:
		// A number, true, false or null: up to the next delimiter.
		for j := i; j < len(b); j++ {
			switch b[j] {
			case ',', '}', ']', ' ', '\n', '\r', '\t':
				if j == i {
					return 0, fmt.Errorf("unexpected %q at byte %d", b[j], j)
				}
				return j, nil
			case '{', '[', '"', ':':
				return 0, fmt.Errorf("unexpected %q at byte %d", b[j], j)
			}
		}
		return 0, errIncomplete
	}
}

// eachElement reads a JSON array from r and calls f with the bytes of
// each element, in order; a null is an empty array. The bytes are valid
// only during the call.
func eachElement(r io.Reader, f func(elem []byte) error) error {
	buf := make([]byte, 0, 256<<10)
	offset := 0 // bytes dropped from buf's front so far
	pos := 0
	eof := false
	// more reads at least one more byte, keeping buf[pos:].
	more := func() error {
		if eof {
			return io.ErrUnexpectedEOF
		}
		if pos > 0 {
			n := copy(buf, buf[pos:])
			buf, offset, pos = buf[:n], offset+pos, 0
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			eof = true
			if n == 0 {
				return io.ErrUnexpectedEOF
			}
		} else if err != nil {
			return err
		}
		return nil
	}
	// next skips spaces and returns the next byte, reading as needed.
	next := func() (byte, error) {
		for {
			pos = skipSpace(buf, pos)
			if pos < len(buf) {
				return buf[pos], nil
			}
			if err := more(); err != nil {
				return 0, err
			}
		}
	}
	bad := func(what string) error {
		return fmt.Errorf("malformed JSON array at byte %d: %s", offset+pos, what)
	}
	c, err := next()
	if err != nil {
		return bad(err.Error())
	}
	if c == 'n' {
		for len(buf)-pos < 4 && !eof {
			if err := more(); err != nil {
				break
			}
		}
		if string(buf[pos:min(pos+4, len(buf))]) == "null" {
			return nil
		}
		return bad("not an array")
	}
	if c != '[' {
		return bad(fmt.Sprintf("%q where an array begins", c))
	}
	pos++
	for first := true; ; first = false {
		c, err := next()
		if err != nil {
			return bad(err.Error())
		}
		if c == ']' {
			return nil
		}
		if !first {
			if c != ',' {
				return bad(fmt.Sprintf("%q where a comma or ] belongs", c))
			}
			pos++
			if _, err := next(); err != nil {
				return bad(err.Error())
			}
		}
		for {
			end, err := skipValue(buf, pos)
			if errors.Is(err, errIncomplete) {
				if err := more(); err != nil {
					return bad(err.Error())
				}
				continue
			}
			if err != nil {
				return bad(err.Error())
			}
			if err := f(buf[pos:end]); err != nil {
				return fmt.Errorf("element at byte %d: %w", offset+pos, err)
			}
			pos = end
			break
		}
	}
}

// eachField calls f with every key and value of the JSON object obj (a
// whole value, as eachElement gives); a null is an empty object.
func eachField(obj []byte, f func(key, val []byte) error) error {
	i := skipSpace(obj, 0)
	if isNull(obj[i:]) {
		return nil
	}
	if i >= len(obj) || obj[i] != '{' {
		return fmt.Errorf("not an object")
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return fmt.Errorf("malformed object at byte %d: a key must be a string", i)
		}
		kend, err := skipString(obj, i)
		if err != nil {
			return fmt.Errorf("malformed object at byte %d: %v", i, err)
		}
		key := obj[i+1 : kend-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if err := json.Unmarshal(obj[i:kend], &k); err != nil {
				return err
			}
			key = []byte(k)
		}
		i = skipSpace(obj, kend)
		if i >= len(obj) || obj[i] != ':' {
			return fmt.Errorf("malformed object at byte %d: a colon belongs after the key %q", i, key)
		}
		i = skipSpace(obj, i+1)
		vend, err := skipValue(obj, i)
		if err != nil {
			return fmt.Errorf("malformed object at byte %d: %v", i, err)
		}
		if err := f(key, obj[i:vend]); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		i = skipSpace(obj, vend)
		switch {
		case i < len(obj) && obj[i] == ',':
			i = skipSpace(obj, i+1)
		case i < len(obj) && obj[i] == '}':
			return nil
		default:
			return fmt.Errorf("malformed object at byte %d: a comma or } belongs after the value of %q", i, key)
		}
	}
}

func isNull(v []byte) bool { return len(v) >= 4 && string(v[:4]) == "null" }

func jsonString(v []byte) (string, error) {
	if isNull(v) {
		return "", nil
	}
	if len(v) < 2 || v[0] != '"' {
		return "", fmt.Errorf("%.20q is not a string", v)
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	err := json.Unmarshal(v, &s)
	return s, err
}

func jsonInt(v []byte) (int64, error) {
	if isNull(v) {
		return 0, nil
	}
	return strconv.ParseInt(string(v), 10, 64)
}

func jsonBool(v []byte) (bool, error) {
	switch string(v) {
	case "true":
		return true, nil
	case "false", "null":
		return false, nil
	}
	return false, fmt.Errorf("%.20q is not a boolean", v)
}

func jsonTime(v []byte) (time.Time, error) {
	var t time.Time
	if isNull(v) {
		return t, nil
	}
	err := t.UnmarshalJSON(v)
	return t, err
}

// jsonStrings decodes an array of strings: nil for null, empty for [].
func jsonStrings(v []byte) ([]string, error) {
	if isNull(v) {
		return nil, nil
	}
	out := []string{}
	err := eachItem(v, func(e []byte) error {
		s, err := jsonString(e)
		out = append(out, s)
		return err
	})
	return out, err
}

// eachItem calls f with every element of the JSON array arr (a whole
// value, as eachField gives).
func eachItem(arr []byte, f func(elem []byte) error) error {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return fmt.Errorf("not an array")
	}
	i = skipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for {
		end, err := skipValue(arr, i)
		if err != nil {
			return fmt.Errorf("malformed array at byte %d: %v", i, err)
		}
		if err := f(arr[i:end]); err != nil {
			return err
		}
		i = skipSpace(arr, end)
		switch {
		case i < len(arr) && arr[i] == ',':
			i = skipSpace(arr, i+1)
		case i < len(arr) && arr[i] == ']':
			return nil
		default:
			return fmt.Errorf("malformed array at byte %d: a comma or ] belongs after an element", i)
		}
	}
}

// jsonStringMap decodes an object of strings: nil for null, empty for {}.
func jsonStringMap(v []byte) (map[string]string, error) {
	if isNull(v) {
		return nil, nil
	}
	out := map[string]string{}
	err := eachField(v, func(k, e []byte) error {
		s, err := jsonString(e)
		out[string(k)] = s
		return err
	})
	return out, err
}

// taskWire is what the agent reads of a task in the Engine API's JSON.
type taskWire struct {
	ID, ServiceID, NodeID string
	DesiredState          string
	State, Err            string // Status.State, Status.Err
	// Spec.Resources.Reservations
	Reservation Resources
	// Spec.Placement.Constraints
	Constraints []string
}

func decodeTask(b []byte) (taskWire, error) {
	var t taskWire
	err := eachField(b, func(k, v []byte) (err error) {
		switch string(k) {
		case "ID":
			t.ID, err = jsonString(v)
		case "ServiceID":
			t.ServiceID, err = jsonString(v)
		case "NodeID":
			t.NodeID, err = jsonString(v)
		case "DesiredState":
			t.DesiredState, err = jsonString(v)
		case "Status":
			err = eachField(v, func(k, v []byte) (err error) {
				switch string(k) {
				case "State":
					t.State, err = jsonString(v)
				case "Err":
					t.Err, err = jsonString(v)
				}
				return err
			})
		case "Spec":
			err = eachField(v, func(k, v []byte) error {
				switch string(k) {
				case "Resources":
					return eachField(v, func(k, v []byte) error {
						if string(k) != "Reservations" {
							return nil
						}
						return decodeResources(v, &t.Reservation)
					})
				case "Placement":
					return eachField(v, func(k, v []byte) (err error) {
						if string(k) == "Constraints" {
							t.Constraints, err = jsonStrings(v)
						}
						return err
					})
				}
				return nil
			})
		}
		return err
	})
	return t, err
}

func decodeResources(v []byte, r *Resources) error {
	return eachField(v, func(k, v []byte) (err error) {
		switch string(k) {
		case "NanoCPUs":
			r.NanoCPUs, err = jsonInt(v)
		case "MemoryBytes":
			r.MemoryBytes, err = jsonInt(v)
		}
		return err
	})
}

// decodeNode reads what toNode reads of a node.
func decodeNode(b []byte) (Node, error) {
	var n Node
	var managerAddr string
	err := eachField(b, func(k, v []byte) (err error) {
		switch string(k) {
		case "ID":
			n.ID, err = jsonString(v)
		case "CreatedAt":
			n.CreatedAt, err = jsonTime(v)
		case "UpdatedAt":
			n.UpdatedAt, err = jsonTime(v)
		case "Spec":
			err = eachField(v, func(k, v []byte) (err error) {
				switch string(k) {
				case "Labels":
					n.Labels, err = jsonStringMap(v)
				case "Role":
					n.Role, err = jsonString(v)
				case "Availability":
					n.Availability, err = jsonString(v)
				}
				return err
			})
		case "Description":
			err = eachField(v, func(k, v []byte) (err error) {
				switch string(k) {
				case "Hostname":
					n.Hostname, err = jsonString(v)
				case "Resources":
					err = decodeResources(v, &n.Capacity)
				case "Engine":
					err = eachField(v, func(k, v []byte) (err error) {
						if string(k) == "Labels" {
							n.EngineLabels, err = jsonStringMap(v)
						}
						return err
					})
				}
				return err
			})
		case "Status":
			err = eachField(v, func(k, v []byte) (err error) {
				switch string(k) {
				case "State":
					n.State, err = jsonString(v)
				case "Addr":
					n.Addr, err = jsonString(v)
				}
				return err
			})
		case "ManagerStatus":
			err = eachField(v, func(k, v []byte) (err error) {
				switch string(k) {
				case "Leader":
					n.Leader, err = jsonBool(v)
				case "Reachability":
					n.Reachability, err = jsonString(v)
				case "Addr":
					managerAddr, err = jsonString(v)
				}
				return err
			})
		}
		return err
	})
	if host, ok := managerHost(managerAddr); ok {
		n.Addr = host
	}
	return n, err
}
