module github.com/veraticus/egoengine/e2e

go 1.24.0
