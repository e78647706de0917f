package main

import (
	"crypto/rand"
	"encoding/base64"
)

func randRead(b []byte) { _, _ = rand.Read(b) }

func encodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }
