// NetBird's agents are Go: this is gRPC's Go client (grpc-go, Debian's golang-google-grpc-dev)
// against the server's own HTTP/2 transport: unary answers, refusals with their codes, a server
// stream ended by a refusal, and one connection kept across the server's keepalive PINGs with
// client keepalive set as an agent sets it. Messages travel as raw bytes (no generated code).
// Usage: go_client HOST:PORT; prints one line per check, exits 1 if any failed.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

type raw struct{}

func (raw) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (raw) Unmarshal(d []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), d...)
	return nil
}
func (raw) Name() string   { return "proto" }
func (raw) String() string { return "proto" }

func main() {
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(dctx, os.Args[1], grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 3 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(raw{})))
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	fail := 0
	check := func(name string, ok bool, detail interface{}) {
		if ok {
			fmt.Println("ok  ", name)
		} else {
			fmt.Println("FAIL", name, detail)
			fail++
		}
	}
	req, resp := []byte{}, []byte{}
	err = conn.Invoke(ctx, "/management.ManagementService/GetServerKey", &req, &resp)
	check("GetServerKey answers a key", err == nil && len(resp) > 40, err)
	err = conn.Invoke(ctx, "/management.ManagementService/isHealthy", &req, &resp)
	check("isHealthy", err == nil, err)
	bad := []byte{0x0a, 0x03, 'a', 'b', 'c', 0x12, 0x01, 'x'} // EncryptedMessage with a bad key
	err = conn.Invoke(ctx, "/management.ManagementService/Login", &bad, &resp)
	st, _ := status.FromError(err)
	check("Login with a bad key: INVALID_ARGUMENT", st.Code() == 3, err)
	err = conn.Invoke(ctx, "/management.ManagementService/Nope", &req, &resp)
	st, _ = status.FromError(err)
	check("unknown method: UNIMPLEMENTED", st.Code() == 12, err)
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/management.ManagementService/Sync")
	if err == nil {
		err = s.SendMsg(&bad)
		s.CloseSend()
		var m []byte
		err = s.RecvMsg(&m)
	}
	st, _ = status.FromError(err)
	check("Sync with a bad key: the stream ends INVALID_ARGUMENT", st.Code() == 3, err)
	// Idle past the server's keepalive PING (after 5 s of silence, answered within 2 s).
	time.Sleep(8 * time.Second)
	err = conn.Invoke(ctx, "/management.ManagementService/GetServerKey", &req, &resp)
	check("GetServerKey after 8 s idle on the same connection", err == nil, err)
	if fail > 0 {
		os.Exit(1)
	}
}
