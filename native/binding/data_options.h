// The data layer's options as they cross the boundary: augmentation and transform specs, read
// with the one option reader. Shared by the loader binding and the test addon.
#pragma once

#include "../data/augment.h"
#include "arguments.h"

namespace s2bnn::binding {

data::AugmentOptions parse_augment(const Options& o);
data::Transform parse_transform(const Options& o);

}  // namespace s2bnn::binding
