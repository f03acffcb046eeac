/* libFuzzer target: the configuration loader (libinih and the checks of
 * sections, keys and values) on hostile INI text, then lookups of every
 * key for every section, as cli_parse and config show make them. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config/config.h"

static void look_up_everything(const struct config *config)
{
    size_t key_count;
    const struct config_key *keys = config_keys(&key_count);

    for (size_t i = 0; i < config->count; i++) {
        for (size_t k = 0; k < key_count; k++) {
            const struct config_entry *entry;
            size_t count = 0;

            entry = config_lookup(config, config->sections[i].name, keys[k].name, &count);
            for (size_t seen = 0; seen < count; entry++) {
                if (strcmp(entry->key, keys[k].name) == 0)
                    seen++;
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config config;
    stow_error err = {0};

    if (config_parse_text((const char *)data, size, "fuzz.conf", &config, &err) == 0) {
        look_up_everything(&config);
        config_free(&config);
    }
    return 0;
}
