// The page's files (dashboard/web/), embedded in the binary at build time by
// dashboard/embed.cc, so a dashboard works on a cluster without internet
// or a checkout.
#ifndef PICOS_DASHBOARD_WEB_ASSETS_H_
#define PICOS_DASHBOARD_WEB_ASSETS_H_

#include <cstddef>

namespace picos::dashboard {

struct WebAsset {
  const char* path;          // "/app.js"
  const char* content_type;  // "text/javascript; charset=utf-8"
  const char* data;
  size_t size;
};

// Every embedded file, and how many.
extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

// The asset at `path`, or null.
const WebAsset* FindWebAsset(const char* path, size_t path_size);

}  // namespace picos::dashboard

#endif  // PICOS_DASHBOARD_WEB_ASSETS_H_
