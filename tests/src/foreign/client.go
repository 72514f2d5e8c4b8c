// A CRI client on grpc-go (the stack of kubelet and crictl), driven line by line by
// stevedore_tests::foreign. It dials like kubelet's CRI client: a unix-socket context
// dialer and the authority "localhost". Each stdin line is a JSON request, each stdout
// line the JSON answer. Messages are bytes both ways (a pass-through codec): the Rust
// side encodes requests and decodes answers, grpc-go carries them.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

type request struct {
	Op       string      `json:"op"`
	Path     string      `json:"path"`
	Req      []byte      `json:"req"`
	Metadata [][2]string `json:"metadata"`
	Timeout  float64     `json:"timeout"`
	ID       int         `json:"id"`
	Wait     float64     `json:"wait"`
}

type stream struct {
	cancel   context.CancelFunc
	messages chan map[string]interface{}
}

func errStatus(err error) map[string]interface{} {
	s, _ := status.FromError(err)
	return map[string]interface{}{"code": int(s.Code()), "message": s.Message()}
}

func callContext(r *request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.Timeout*float64(time.Second)))
	for _, kv := range r.Metadata {
		ctx = metadata.AppendToOutgoingContext(ctx, kv[0], kv[1])
	}
	return ctx, cancel
}

func main() {
	path := os.Args[1]
	conn, err := grpc.Dial(path,
		grpc.WithInsecure(),
		grpc.WithAuthority("localhost"),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}),
			grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	streams := map[int]*stream{}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var r request
		if err := json.Unmarshal(in.Bytes(), &r); err != nil {
			out.Encode(map[string]interface{}{"error": err.Error()})
			continue
		}
		switch r.Op {
		case "unary":
			ctx, cancel := callContext(&r)
			var resp []byte
			err := conn.Invoke(ctx, r.Path, &r.Req, &resp)
			cancel()
			if err != nil {
				out.Encode(errStatus(err))
			} else {
				out.Encode(map[string]interface{}{"code": 0, "message": "", "resp": resp})
			}
		case "open":
			ctx, cancel := callContext(&r)
			cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, r.Path)
			if err == nil {
				err = cs.SendMsg(&r.Req)
			}
			if err == nil {
				err = cs.CloseSend()
			}
			if err != nil {
				cancel()
				out.Encode(map[string]interface{}{"error": err.Error()})
				continue
			}
			s := &stream{cancel: cancel, messages: make(chan map[string]interface{}, 1024)}
			streams[r.ID] = s
			go func() {
				for {
					var msg []byte
					if err := cs.RecvMsg(&msg); err != nil {
						end := errStatus(err)
						if err.Error() == "EOF" {
							end = map[string]interface{}{"code": 0, "message": ""}
						}
						end["end"] = true
						s.messages <- end
						return
					}
					s.messages <- map[string]interface{}{"msg": msg}
				}
			}()
			out.Encode(map[string]interface{}{"opened": true})
		case "next":
			select {
			case m := <-streams[r.ID].messages:
				out.Encode(m)
			case <-time.After(time.Duration(r.Wait * float64(time.Second))):
				out.Encode(map[string]interface{}{"none": true})
			}
		case "cancel":
			streams[r.ID].cancel()
			delete(streams, r.ID)
			out.Encode(map[string]interface{}{"cancelled": true})
		default:
			out.Encode(map[string]interface{}{"error": "unknown op " + r.Op})
		}
	}
}
