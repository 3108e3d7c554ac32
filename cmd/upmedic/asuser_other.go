//go:build !unix

package main

import "errors"

// become is not supported where processes have no unix uid.
func become(identity) error {
	return errors.New("--as needs a unix system")
}
