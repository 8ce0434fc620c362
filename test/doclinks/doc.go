// Package doclinks checks the documentation as a reader follows it: every relative link
// of README.md and docs/*.md reaches a file, every #anchor a heading of that file, and the
// README, the front door, links every page under docs/. Pages move; a link that still
// points where the text used to be sends the reader nowhere.
package doclinks
