package config

import "strings"

// suggest returns the candidate that key most likely misspells, or "". A
// candidate matches when it differs only in case, "-" for "_" or camelCase
// (pathPrefix, path-prefix), or when it is within a small edit distance.
func suggest(key string, candidates []string) string {
	if len(key) > maxSuggestKey {
		return ""
	}
	norm := normalizeKey(key)
	best, bestDist := "", maxSuggestDistance(key)+1
	for _, c := range candidates {
		if normalizeKey(c) == norm {
			return c
		}
		if d := editDistance(strings.ToLower(key), c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// maxSuggestKey bounds the work spent on a key no candidate can be close to.
const maxSuggestKey = 64

// maxSuggestDistance allows one typo in a short key, and about one in three
// characters in a longer one.
func maxSuggestDistance(key string) int {
	return max(1, min(3, len(key)/3))
}

func normalizeKey(k string) string {
	k = strings.ToLower(k)
	return strings.NewReplacer("_", "", "-", "", " ", "").Replace(k)
}

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance, so a swap of two letters ("upsteram") counts as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
