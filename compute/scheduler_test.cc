// FairShares (compute/scheduler.h): max-min fair division of a node's CPUs.
#include <vector>

#include "compute/scheduler.h"
#include "gtest/gtest.h"

namespace picos::compute {
namespace {

TEST(FairShares, EqualDemandsSplitEvenly) {
  EXPECT_EQ(FairShares(4, {4, 4}), (std::vector<int>{2, 2}));
  EXPECT_EQ(FairShares(6, {6, 6, 6}), (std::vector<int>{2, 2, 2}));
}

TEST(FairShares, OneClientTakesAll) { EXPECT_EQ(FairShares(4, {4}), (std::vector<int>{4})); }

TEST(FairShares, WhatOneLeavesGoesToOthers) {
  // The first wants one: the second gets the other three.
  EXPECT_EQ(FairShares(4, {1, 8}), (std::vector<int>{1, 3}));
  EXPECT_EQ(FairShares(10, {2, 8, 3}), (std::vector<int>{2, 5, 3}));
}

TEST(FairShares, RemainderToEarliest) { EXPECT_EQ(FairShares(3, {3, 3}), (std::vector<int>{2, 1})); }

TEST(FairShares, NoDemandNoShare) {
  EXPECT_EQ(FairShares(4, {0, 4}), (std::vector<int>{0, 4}));
  EXPECT_EQ(FairShares(0, {4, 4}), (std::vector<int>{0, 0}));
  EXPECT_EQ(FairShares(4, {}), (std::vector<int>{}));
}

TEST(FairShares, MoreClientsThanCpus) {
  const std::vector<int> s = FairShares(2, {1, 1, 1});
  EXPECT_EQ(s, (std::vector<int>{1, 1, 0}));
}

TEST(FairShares, NeverMoreThanCpusNorDemand) {
  for (int cpus = 0; cpus <= 9; ++cpus) {
    for (int a = 0; a <= 5; ++a) {
      for (int b = 0; b <= 5; ++b) {
        const std::vector<int> s = FairShares(cpus, {a, b, 3});
        EXPECT_LE(s[0] + s[1] + s[2], cpus);
        EXPECT_LE(s[0], a);
        EXPECT_LE(s[1], b);
        EXPECT_LE(s[2], 3);
        // Nothing left idle that someone wants.
        if (s[0] + s[1] + s[2] < cpus) {
          EXPECT_TRUE(s[0] == a && s[1] == b && s[2] == 3);
        }
      }
    }
  }
}

}  // namespace
}  // namespace picos::compute
