// Package agentpb is the generated gRPC code of the agent → gateway protocol
// (agent.proto). Regenerating needs protoc, protoc-gen-go and
// protoc-gen-go-grpc; the generated files are committed so builds do not.
package agentpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative agent.proto
